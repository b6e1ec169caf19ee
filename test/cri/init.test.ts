// The init-container family under containerd's CRI, run as the kubelet runs it: examples/pod.yaml (method uid) and
// examples/pod-mark.yaml (method mark) in the classic layout, and the native-sidecar layout the chart renders for
// Kubernetes 1.29 (init, then the proxy as an init container with restartPolicy Always held by its startup probe,
// then the app). Real connections both ways, in both families, between the pod and a server in the node's
// namespace; each goes through the proxy exactly once, with its original destination.
import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  IMAGE,
  type Node,
  startNode,
  podsOf,
  runPod,
  agentAndProxy,
  exchange,
  privilegesOf,
  REMOTE_PORT,
  relay,
  relaysOf,
  startRemote,
} from '../helpers/cri/index.js'
import { CAP_NET_ADMIN } from '../../src/privilege/status.js'
import { helm } from '../helpers/helm.js'
import { kernelAvailable } from '../helpers/kernel.js'
import { ROOT } from '../helpers/podman.js'

const NET_ADMIN = 1n << BigInt(CAP_NET_ADMIN)
const byName = <T extends { name: string }>(list: readonly T[]): Record<string, T> => Object.fromEntries(list.map(r => [r.name, r]))

let node: Node | undefined
t.before(async () => {
  if (process.getuid?.() !== 0) return
  node = await startNode(t)
  await startRemote(t, node)
})

for (const [example, method, caps] of [
  ['pod.yaml', 'uid', 0n],
  ['pod-mark.yaml', 'mark', NET_ADMIN],
] as const) {
  t.test(
    `examples/${example} (method ${method}): init programs the pod, the app's traffic goes through the proxy both ways, in both families`,
    async t => {
      if (!kernelAvailable(t)) return
      const pod = await runPod(node!, readFileSync(`${ROOT}examples/${example}`, 'utf8'))
      t.equal(pod.status, 'Running', JSON.stringify(pod.failure))
      const r = byName(await pod.containers())
      t.same([r['sidecar-redirect']!.exitCode, r['proxy']!.state, r['app']!.state], [0, 'running', 'running'], 'init exited 0; proxy and app run')
      t.match(
        pod.logs('sidecar-redirect').join('\n'),
        /init: ok[\s\S]*ipv4 capture: passed[\s\S]*ipv6 capture: passed/,
        "init's live check passed in both families",
      )
      t.same(
        privilegesOf(r['sidecar-redirect']!.startStatus!),
        [[0, 0, 0, 0], NET_ADMIN | (1n << 13n), NET_ADMIN | (1n << 13n), 0n, 0n, NET_ADMIN | (1n << 13n), false],
        'the init container ran as root with NET_ADMIN and NET_RAW only',
      )
      t.ok(r['app']!.startedAt! >= r['proxy']!.readyAt!, "the app started once the proxy's postStart hold had returned")
      const expected = await exchange(t, node!, pod)
      t.same(relaysOf(pod), expected, 'each connection went through the proxy once, with its original destination, and nothing else did')
      const { agent, proxy } = agentAndProxy(pod)
      for (const [what, status] of [
        ['agent', agent],
        ['proxy', proxy],
      ] as const) {
        t.same(
          privilegesOf(status),
          [[1337, 1337, 1337, 1337], caps, caps, method === 'mark' ? caps : 0n, caps, caps, true],
          `${what}: UID 1337, no_new_privs, capabilities exactly 0x${caps.toString(16)}, read from the host`,
        )
      }
      t.same(privilegesOf(r['app']!.startStatus!), [[1000, 1000, 1000, 1000], 0n, 0n, 0n, 0n, 0n, true], 'the app: UID 1000, no capability')
      await pod.stop({ gracePeriodSeconds: 5 })
    },
  )
}

// The chart's demo app, replaced by one that connects to the node's server as its very first act, serves, and on
// SIGTERM connects once more before it exits: its first and its last connections need the proxy.
const appScript = (host: string): string => `
  const { execFileSync, spawn } = require('child_process')
  const connect = () => execFileSync('/usr/local/bin/node', ['/app/dist/peer.mjs', 'connect', '${host}', '${REMOTE_PORT}'], { encoding: 'utf8' }).trim()
  console.log('first ' + connect())
  const server = spawn('/usr/local/bin/node', ['/app/dist/peer.mjs', 'serve', 'app=[::]:8080'], { stdio: 'inherit' })
  process.on('SIGTERM', () => { console.log('last ' + connect()); server.kill(); process.exit(0) })`

t.test(
  'the chart for Kubernetes 1.29: the proxy is a native sidecar; the app is held until it listens, its first connection goes through it, and it is stopped after the app',
  async t => {
    if (!kernelAvailable(t)) return
    const rendered = await helm(
      'template',
      'sr',
      `${ROOT}charts/sidecar-redirect`,
      '--kube-version',
      '1.29',
      '--set',
      'demo.enabled=true,image.repository=localhost/sidecar-redirect,image.tag=dev',
    )
    t.equal(rendered.exitCode, 0, 'helm template renders the chart', { output: rendered.output })
    const manifest = podsOf(rendered.output)[0] as any
    t.same(
      [manifest.spec.initContainers.map((c: any) => [c.name, c.restartPolicy ?? null]), manifest.spec.containers.map((c: any) => c.name)],
      [
        [
          ['sidecar-redirect', null],
          ['proxy', 'Always'],
        ],
        ['app'],
      ],
      'the layout: init, then the proxy as a native sidecar, then the app',
    )
    t.equal(manifest.spec.containers[0].image, IMAGE)
    manifest.spec.containers[0].command = ['/usr/local/bin/node', '-e', appScript(node!.gateways.ipv4)]

    const pod = await runPod(node!, manifest)
    t.equal(pod.status, 'Running', JSON.stringify(pod.failure))
    const started = byName(await pod.containers())
    const probed = pod.events.find(e => e.type === 'ProbePassed' && e.container === 'proxy')
    t.ok(probed, "the proxy's startup probe (entrypoint ready) passed")
    t.ok(started['app']!.createdAt! >= probed!.at, 'the app was created only after it passed')
    t.ok(started['proxy']!.startedAt! >= started['sidecar-redirect']!.finishedAt!, 'the proxy started after the init container exited')
    const address = pod.ips[0]!
    await pod.waitForLog('app', 'first ')
    t.match(pod.logs('app')[0], /^first \{"ok":true,"reply":\{"label":"remote"/, "the app's first connection, made as it started, was answered")
    const expected = [relay(address, `${node!.gateways.ipv4}:${REMOTE_PORT}`), ...(await exchange(t, node!, pod))]
    t.same(await node!.outside(), [], "while the pod runs: nothing of the node in the machine's namespace, /etc/cni, /run/containerd or /var/lib/cni")

    const final = byName(await pod.stop())
    t.match(
      pod.logs('app').find(line => line.startsWith('last ')),
      /^last \{"ok":true,"reply":\{"label":"remote"/,
      "the app's last connection, made on SIGTERM, was answered",
    )
    t.same(
      relaysOf(pod),
      [...expected, relay(address, `${node!.gateways.ipv4}:${REMOTE_PORT}`)],
      'first, every later and the last connection went through the proxy once each',
    )
    t.equal(final['app']!.exitCode, 0)
    t.ok(final['proxy']!.stopRequestedAt! >= final['app']!.finishedAt!, 'the proxy was asked to stop only after the app had exited')
    t.ok(final['proxy']!.finishedAt! > final['app']!.finishedAt!, 'and exited after it')
  },
)

t.test('the node leaves no trace on the machine', async t => {
  if (!kernelAvailable(t) || !node) return
  await node.stop()
  t.same(await node.traces(), [], 'no process, mount, cgroup, netns, link, route or rule of the node; /etc/cni and /run/containerd as they were')
})
