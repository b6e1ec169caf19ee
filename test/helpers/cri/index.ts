/**
 * Pods on containerd's CRI, started and stopped the way the kubelet (1.29+) does it: the entry point for tests.
 *
 * A test starts a node (a private containerd 1.6 with runc in a network namespace that plays the node, files in
 * a temp dir, torn down with the test), runs any Pod manifest on it, talks to the pod, and stops it:
 *
 * ```ts
 * import { IMAGE, runPod, startNode } from '../helpers/cri/index.js'
 *
 * t.test('my pod', async t => {
 *   const node = await startNode(t)                         // or startNode(t, { cni: { settings: {...} } })
 *   const pod = await runPod(node, yamlText)                // a Pod object, or YAML (the first Pod in it)
 *   t.equal(pod.status, 'Running', JSON.stringify(pod.failure))
 *   const app = await pod.container('app')                  // exit code, /proc capability sets, times
 *   await pod.exec('app', ['/usr/local/bin/node', '-e', '...'])
 *   pod.logs('proxy')                                       // the container's log lines
 *   const final = await pod.stop()                          // preStop, apps, sidecars in reverse, sandbox
 * })
 * ```
 *
 * What runs where:
 * - Images: only `IMAGE` (this checkout's, `localhost/sidecar-redirect:dev`) and the pause image are on the node;
 *   `npm run test:cri` (scripts/cri/setup.sh) builds and saves them. Nothing is ever pulled.
 * - The node: `node.netns` is where the kubelet and hostNetwork pods would be; `node.gateways` are its addresses
 *   on the pods' bridge (198.19.x.1 and 2001:db8:x::1); `node.spawn` / `node.run` start processes there (a server
 *   for the pods to reach). In CNI mode our plugin is last in the node's conflist with the entry `cni-install`
 *   writes, and `node.agent` is the node agent (its lines log each ADD and DEL with the plugin's verdict).
 * - The pod: `runPod` resolves once the pod is Running (every app container started and its postStart returned)
 *   or stopped at a failing step: `pod.status` is then `Init:Error`, `Init:StartupProbeFailed`,
 *   `CreateContainerConfigError` and the like, and `pod.failure` names the container. Nothing is restarted.
 *   `pod.events` is the ordered log (Created, Started, ProbeFailed, ProbePassed, PostStartDone, Exited,
 *   PreStopDone, Stopping, Stopped) with times; `options.onEvent` lets a test act while the pod starts.
 *   `pod.netns` is the pod's network namespace for nsenter, `pod.ips` its addresses.
 * - Manifests: the API server's schema (kubernetes-models) and defaults are applied; a field the runner does not
 *   carry out throws ManifestError naming it (hostPath volumes, grpc probes, user namespaces...), and fields that
 *   change nothing on one node are listed in `pod.notes`. ConfigMaps and Secrets come in `options`.
 *
 * See manifest.ts for the kubelet's mapping, pod.ts for the order, containerd.ts for the node.
 */

export { CriError, isNotFound } from './client.js'
export { ARCHIVES, type CniMode, IMAGE, type Node, type NodeOptions, PAUSE_IMAGE, startNode } from './containerd.js'
export { admitPod, ContainerConfigError, ManifestError, type Role } from './manifest.js'
export { type ContainerReport, type Pod, type PodEvent, type PodStatus, podsOf, type RunOptions, type RuntimeView, runPod } from './pod.js'
export {
  APP_PORT,
  agentAndProxy,
  connectFrom,
  connectFromNode,
  exchange,
  privilegesOf,
  REMOTE_PORT,
  relay,
  relaysOf,
  startRemote,
} from './traffic.js'
