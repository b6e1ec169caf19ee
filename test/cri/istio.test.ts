// Istio's exact init containers under containerd's CRI, run as the kubelet runs them: examples/istio-pod.yaml
// (Istio's istio-init with this image) and examples/istio-cni-pod.yaml (Istio's istio-validation), beside the
// stand-in proxy on 15001/15006. Real connections both ways between the pod and a server in the node's namespace.
// Istio's rule for IPv6: the pod's first global address is IPv4, so without --dual-stack IPv6 is left alone
// (answered directly, no relay); with it, both families go through the proxy.
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { CAP_NET_ADMIN } from '../../src/privilege/status.js'
import {
  APP_PORT,
  connectFrom,
  connectFromNode,
  type Node,
  type Pod,
  privilegesOf,
  REMOTE_PORT,
  relay,
  relaysOf,
  runPod,
  startNode,
  startRemote,
} from '../helpers/cri/index.js'
import { kernelAvailable } from '../helpers/kernel.js'
import { ROOT } from '../helpers/podman.js'

const NET_ADMIN_RAW = (1n << BigInt(CAP_NET_ADMIN)) | (1n << 13n)
type PodSpec = { metadata: { name: string }; spec: { initContainers: { name: string; args: string[] }[]; containers: unknown[] } }
const read = (file: string): PodSpec => parse(readFileSync(`${ROOT}examples/${file}`, 'utf8')) as PodSpec
const byName = <T extends { name: string }>(list: readonly T[]): Record<string, T> => Object.fromEntries(list.map(r => [r.name, r]))

let node: Node | undefined
t.before(async () => {
  if (process.getuid?.() !== 0) return
  node = await startNode(t)
  await startRemote(t, node)
})

/** Both ways in each family; relays expected only in the families Istio captures. */
const exchange = async (t: Test, pod: Pod, captured: readonly ('ipv4' | 'ipv6')[]): Promise<string[]> => {
  await pod.waitForLog('app', '"ready":true')
  const expected: string[] = []
  for (const [family, address, gateway] of [
    ['ipv4', pod.ips.find(ip => !ip.includes(':')), node!.gateways.ipv4],
    ['ipv6', pod.ips.find(ip => ip.includes(':')), node!.gateways.ipv6],
  ] as const) {
    if (!address) {
      t.fail(`${family}: the pod has no address`)
      continue
    }
    t.equal(await connectFrom(pod, 'app', gateway, REMOTE_PORT), 'remote', `${family}: app -> the node's server, answered by it`)
    t.equal(await connectFromNode(node!, address, APP_PORT), 'app', `${family}: node -> the app, answered by it`)
    if (captured.includes(family)) expected.push(relay(address, `${gateway}:${REMOTE_PORT}`), relay(gateway, `${address}:${APP_PORT}`))
  }
  return expected
}

for (const [what, extra, captured] of [
  ["Istio's exact istio-init", [], ['ipv4']],
  ['istio-init with --dual-stack', ['--dual-stack'], ['ipv4', 'ipv6']],
] as const) {
  t.test(`${what}: the app's traffic goes through the proxy both ways in ${captured.join(' and ')}`, async t => {
    if (!kernelAvailable(t)) return
    const spec = read('istio-pod.yaml')
    spec.spec.initContainers[0]!.args.push(...extra)
    const pod = await runPod(node!, spec)
    t.equal(pod.status, 'Running', JSON.stringify(pod.failure))
    const r = byName(await pod.containers())
    t.same([r['istio-init']!.exitCode, r['istio-proxy']!.state, r['app']!.state], [0, 'running', 'running'], 'istio-init exited 0; proxy and app run')
    t.match(pod.logs('istio-init').join('\n'), /\tinfo\tsidecar-redirect istio-iptables: ok/, "its report, in Istio's log format")
    t.same(
      privilegesOf(r['istio-init']!.startStatus!),
      [[0, 0, 0, 0], NET_ADMIN_RAW, NET_ADMIN_RAW, 0n, 0n, NET_ADMIN_RAW, true],
      'istio-init ran as root with NET_ADMIN and NET_RAW only (and no_new_privs: allowPrivilegeEscalation false)',
    )
    const expected = await exchange(t, pod, captured)
    t.same(relaysOf(pod, 'istio-proxy'), expected, 'each captured connection went through the proxy once, with its original destination')
    await pod.stop({ gracePeriodSeconds: 2 })
  })
}

t.test("Istio's exact istio-validation: exit 126 without capture, and the pod never starts", async t => {
  if (!kernelAvailable(t)) return
  const pod = await runPod(node!, read('istio-cni-pod.yaml'))
  t.equal(pod.status, 'Init:Error', JSON.stringify(pod.failure))
  const r = byName(await pod.containers())
  t.equal(r['istio-validation']!.exitCode, 126)
  t.match(pod.logs('istio-validation').join('\n'), /validation failed/)
  t.same([r['istio-proxy']!.state, r['app']!.state], ['not created', 'not created'], 'the proxy and the app never ran')
  await pod.stop({ gracePeriodSeconds: 2 })
})

t.test('istio-init, then istio-validation as UID 1337 with no capability: exit 0, and capture works', async t => {
  if (!kernelAvailable(t)) return
  const spec = read('istio-pod.yaml')
  spec.spec.initContainers.push(...read('istio-cni-pod.yaml').spec.initContainers)
  const pod = await runPod(node!, spec)
  t.equal(pod.status, 'Running', JSON.stringify(pod.failure))
  const r = byName(await pod.containers())
  t.same([r['istio-init']!.exitCode, r['istio-validation']!.exitCode], [0, 0])
  t.same(
    privilegesOf(r['istio-validation']!.startStatus!),
    [[1337, 1337, 1337, 1337], 0n, 0n, 0n, 0n, 0n, true],
    'validation: UID 1337, no capability',
  )
  t.match(pod.logs('istio-validation').join('\n'), /validation passed, capture is in place/)
  const expected = await exchange(t, pod, ['ipv4'])
  t.same(relaysOf(pod, 'istio-proxy'), expected, 'each captured connection went through the proxy once')
  await pod.stop({ gracePeriodSeconds: 2 })
})

t.test('the node leaves no trace on the machine', async t => {
  if (!kernelAvailable(t) || !node) return
  await node.stop()
  t.same(await node.traces(), [], 'no process, mount, cgroup, netns, link, route or rule of the node')
})
