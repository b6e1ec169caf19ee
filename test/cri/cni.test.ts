// CNI mode under containerd's CRI: our plugin chained last on the node (after Debian's bridge and host-local, with
// the entry cni-install writes), a node agent from this checkout, and examples/pod-cni.yaml run as the kubelet runs
// it. containerd hands the plugin the pod's annotations (runtimeConfig) and its namespace (CNI_ARGS): the capture
// annotation decides, so a pod annotated off, or in an excluded namespace, is not captured, and its validate init
// container keeps the app from ever starting. No container of the pod has a capability.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { type Node, startNode, runPod, agentAndProxy, exchange, privilegesOf, relaysOf, startRemote } from '../helpers/cri/index.js'
import { parse } from 'yaml'
import { runForStatus, startProcess } from '../../src/exec/processes.js'
import { CAP_NET_ADMIN, hasCapability, readStatus } from '../../src/privilege/status.js'
import { dnsClient, proxyDnsArgs } from '../helpers/dns.js'
import { kernelAvailable } from '../helpers/kernel.js'
import { untapped } from '../helpers/processes.js'
import { ROOT } from '../helpers/podman.js'

const EXAMPLE = parse(readFileSync(`${ROOT}examples/pod-cni.yaml`, 'utf8')) as { metadata: Record<string, unknown>; spec: Record<string, unknown> }
// What examples/pod-cni.yaml's proxy listens on and its validate expects.
const SETTINGS = { ISTIO_PROXY_PORT: '5001' }
const CAPTURE = 'sidecar-redirect.io/capture'
const NO_PRIVILEGE = (uid: number) => [[uid, uid, uid, uid], 0n, 0n, 0n, 0n, 0n, true]

const annotated = (annotations: Record<string, string>, namespace = 'shop') => ({
  ...EXAMPLE,
  metadata: { ...EXAMPLE.metadata, namespace, annotations },
})

const natRules = async (netns: string): Promise<string> => (await runForStatus('nsenter', [`--net=${netns}`, 'iptables-save', '-t', 'nat'])).output
const agentLines = (node: Node, sandboxId: string, command: string) =>
  node.agent!.lines.filter(line => line.includes(`cni: ${command} ${sandboxId} `))

let node: Node | undefined
t.before(async () => {
  if (process.getuid?.() !== 0) return
  // captureAll false: only the annotation can capture a pod.
  // The operator lets pods choose DNS capture (the test below asks for resolv-conf); nothing else may be annotated.
  node = await startNode(t, { cni: { settings: SETTINGS, captureAll: false, allowedAnnotations: ['dns-capture'] } })
  await startRemote(t, node)
})

t.test(
  'examples/pod-cni.yaml annotated for capture: the plugin captures it at sandbox creation; validate passes; no container has a capability; traffic goes through the proxy both ways, in both families',
  async t => {
    if (!kernelAvailable(t)) return
    const pod = await runPod(node!, annotated({ [CAPTURE]: 'enabled' }))
    t.equal(pod.status, 'Running', JSON.stringify(pod.failure))
    const [add] = agentLines(node!, pod.sandboxId!, 'ADD')
    t.match(
      add,
      /exit 0: sidecar-redirect: ADD \S+: captured \(annotation sidecar-redirect\.io\/capture=enabled\)/,
      'the annotation reached the plugin through containerd',
    )
    t.match(pod.logs('validate').join('\n'), /validate: ok[\s\S]*ipv4 capture: passed, uid 1000[\s\S]*ipv6 capture: passed, uid 1000/)
    t.match(
      await natRules(pod.netns),
      /-A OUTPUT -p tcp -m comment --comment "sidecar-redirect\/outbound" -j SIDECAR_OUTBOUND/,
      "the plugin's rules are in the pod",
    )

    for (const report of await pod.containers()) {
      t.same(
        report.runtime?.capabilities,
        { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
        `${report.name}: containerd gave it no capability`,
      )
      if (report.startStatus) t.same(privilegesOf(report.startStatus).slice(1, 6), [0n, 0n, 0n, 0n, 0n], `${report.name}: none at start, from /proc`)
    }
    const { agent, proxy } = agentAndProxy(pod)
    t.same(privilegesOf(agent), NO_PRIVILEGE(1337), 'agent: UID 1337, every capability set empty, read from the host')
    t.same(privilegesOf(proxy), NO_PRIVILEGE(1337), 'proxy: the same')
    t.same(privilegesOf(pod.processOf('app').status), NO_PRIVILEGE(1000), 'app: UID 1000, the same')
    const pause = readStatus(Number(/\/proc\/(\d+)\//.exec(pod.netns)![1]))
    t.notOk(hasCapability(pause.capEff, CAP_NET_ADMIN), "the sandbox's pause process has no NET_ADMIN either: it only holds the namespaces")

    const expected = await exchange(t, node!, pod)
    t.same(relaysOf(pod), expected, 'each connection went through the proxy once, with its original destination, and nothing else did')
    t.same(await node!.outside(), [], "while the pod runs: nothing of the node in the machine's namespace, /etc/cni, /run/containerd or /var/lib/cni")

    await pod.stop({ gracePeriodSeconds: 5 })
    const dels = agentLines(node!, pod.sandboxId!, 'DEL')
    t.equal(dels.length, 2, 'containerd called DEL twice: at StopPodSandbox and at RemovePodSandbox')
    t.match(dels[0], /DEL \S+ \/\S+\/netns\/cni-\S+: exit 0/, 'the first with the netns')
    t.match(dels[1], /DEL \S+ : exit 0/, 'the second with an empty CNI_NETNS')
    t.same(
      node!.agent!.lines.filter(line => / (CHECK|STATUS|GC) /.test(line)),
      [],
      'and never CHECK, STATUS or GC',
    )
  },
)

for (const [what, annotations, namespace, reason] of [
  ['annotated off', { [CAPTURE]: 'disabled' }, 'shop', 'annotation sidecar-redirect.io/capture=disabled'],
  ['not annotated, with captureAll false', {}, 'shop', 'captureAll is false'],
  ['annotated for capture in an excluded namespace', { [CAPTURE]: 'enabled' }, 'kube-system', 'namespace kube-system is in excludeNamespaces'],
] as const) {
  t.test(`a pod ${what} is not captured: validate exits 9 and the proxy and the app never start`, async t => {
    if (!kernelAvailable(t)) return
    const pod = await runPod(node!, annotated(annotations, namespace))
    t.equal(pod.status, 'Init:Error')
    t.same(pod.failure, { container: 'validate', message: 'exited 9' })
    t.match(agentLines(node!, pod.sandboxId!, 'ADD')[0], `not captured (${reason}); nothing changed`, 'the plugin saw why, through containerd')
    t.match(pod.logs('validate').join('\n'), /the pod's traffic is not captured[\s\S]*ipv4 capture: failed, uid 1000/)
    t.notMatch(await natRules(pod.netns), 'SIDECAR_', 'no rule of ours is in the pod')
    const states = (await pod.containers()).map(r => [r.name, r.state])
    t.same(
      states,
      [
        ['validate', 'exited'],
        ['proxy', 'not created'],
        ['app', 'not created'],
      ],
      'the proxy and the app were never created',
    )
    await pod.stop()
  })
}

t.test(
  "resolv-conf DNS capture under containerd: the pod's dnsConfig nameservers reach the plugin as the dns capability, and a real query to one is answered by the proxy's DNS server",
  async t => {
    if (!kernelAvailable(t)) return
    // The node's bridge addresses, which the pod reaches on its own subnet, as a cluster DNS service's: nothing
    // listens on port 53 there, so only capture can answer.
    const nameservers = [node!.gateways.ipv4, node!.gateways.ipv6]
    const pod = await runPod(node!, {
      ...annotated({ [CAPTURE]: 'enabled', 'sidecar-redirect.io/dns-capture': 'resolv-conf' }),
      spec: { ...EXAMPLE.spec, dnsPolicy: 'None', dnsConfig: { nameservers } },
    })
    t.equal(pod.status, 'Running', JSON.stringify(pod.failure))
    t.match(agentLines(node!, pod.sandboxId!, 'ADD')[0], /exit 0: sidecar-redirect: ADD \S+: captured/)
    const rules = await natRules(pod.netns)
    t.match(
      rules,
      new RegExp(`-d ${nameservers[0]}/32 -p udp .*--dport 53 .*REDIRECT --to-ports 15053`),
      `UDP to ${nameservers[0]}:53 goes to the DNS port`,
    )
    // The proxy's DNS server: UID 1337, on the DNS port in the pod's netns, knowing pod.test.
    const server = startProcess('nsenter', [`--net=${pod.netns}`, 'setpriv', ...proxyDnsArgs(15053)])
    t.teardown(() => server.stop())
    await server.waitForLine(line => line.includes('started'))
    for (const [ns, type, answer] of [
      [nameservers[0], 'A', '198.18.7.7'],
      [nameservers[1], 'AAAA', '2001:db8::7:7'],
    ] as const) {
      // Untapped: the test runner's hook would fail at exit in a child that changed UID.
      const query = await runForStatus('nsenter', [
        `--net=${pod.netns}`,
        ...untapped('setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, dnsClient(), 'udp', ns!, 'pod.test', type),
      ])
      t.match(
        JSON.parse(query.output.split('\n').find(line => line.startsWith('{')) ?? '{}'),
        { ok: true, answers: [answer], from: { address: ns, port: 53 } },
        `an app query to ${ns}:53 is answered by the pod's DNS server, from ${ns}:53`,
        { output: query.output },
      )
    }
    await pod.stop()
  },
)

t.test('the node leaves no trace on the machine', async t => {
  if (!kernelAvailable(t) || !node) return
  await node.stop()
  t.same(await node.traces(), [], 'no process, mount, cgroup, netns, link, route or rule of the node; /etc/cni and /run/containerd as they were')
})
