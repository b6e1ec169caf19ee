// CNI mode end to end under a real container runtime: podman 4.3's CNI backend, set up by a private containers.conf
// (CONTAINERS_CONF; the machine's own, with netavark, stays as the image tests need it), plays examples/pod-cni.yaml
// on a conflist of Debian's loopback, bridge and host-local with our plugin last, beside a node agent run from this
// checkout. No container of the pod has a capability: the plugin captures from the node, the validate init
// container proves it from inside, and real connections both ways, in both families, go through the proxy.
// podman runs in a namespace playing the node (nsenter --net only, so the pod netns it mounts stays visible to the
// agent): its bridge, addresses and routes live there, and the machine's own namespace gets nothing. Needs the
// image (npm run test:cni builds it).
import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { runForStatus, startProcess } from '../../../src/exec/processes.js'
import { readStatus } from '../../../src/privilege/status.js'
import { kernelAvailable, programs } from '../../helpers/kernel.js'
import { addressOf, connect, natRulesOf, playInOrder, podman, ROOT, runPodman, runSpec, unique, waitForLog } from '../../helpers/podman.js'
import { type Node, podmanNetwork, startPodmanNode } from '../../helpers/podman-cni.js'

const POD = unique('sidecar-cni-demo')
const FILE = `${ROOT}examples/pod-cni.yaml`
// The port examples/pod-cni.yaml's proxy listens on and its validate expects.
const SETTINGS = { ISTIO_PROXY_PORT: '5001' }

/** Runs a peer command in the node namespace (outside the pod) and returns what it printed. */
const fromNode = async (node: Node, args: string[]): Promise<string> =>
  (await runForStatus('nsenter', [`--net=${node.netns}`, process.execPath, programs().peer, ...args])).output

/** Lines of the machine's own namespace (links, addresses, routes, every ruleset) that name one of `needles`. */
const hostLinesNaming = async (needles: readonly string[]): Promise<string[]> => {
  const lines: string[] = []
  for (const [file, args] of [
    ['ip', ['-o', 'link']],
    ['ip', ['-o', 'addr']],
    ['ip', ['route', 'show', 'table', 'all']],
    ['ip', ['-6', 'route', 'show', 'table', 'all']],
    ['nft', ['list', 'ruleset']],
    ['iptables-legacy-save', []],
    ['ip6tables-legacy-save', []],
  ] as const) {
    lines.push(...(await runForStatus(file, args)).output.split('\n').filter(line => needles.some(n => line.includes(n))))
  }
  return lines
}

const containersOf = async (pod: string): Promise<string[]> =>
  (await podman('ps', '-a', '--filter', `pod=${pod}`, '--format', '{{.Names}}')).split('\n').filter(name => !name.endsWith('-infra'))

t.test('docs/cni.md shows the CNI pod spec the test plays, verbatim', async t => {
  t.ok(readFileSync(`${ROOT}docs/cni.md`, 'utf8').includes(readFileSync(FILE, 'utf8')), 'examples/pod-cni.yaml')
})

t.test(
  'podman with its CNI backend runs the pod with no capability in any container; validate passes, and app traffic goes through the proxy both ways, in both families',
  async t => {
    if (!kernelAvailable(t)) return
    const node = await startPodmanNode(t, [POD])
    const { name, bridge } = podmanNetwork(node.rig, { settings: SETTINGS, captureAll: true }, [
      [{ subnet: '198.19.20.0/24' }],
      [{ subnet: '2001:db8:20::/64' }],
    ])
    const remote = startProcess('nsenter', [`--net=${node.netns}`, process.execPath, programs().peer, 'serve', 'remote=[::]:9090'])
    t.teardown(() => remote.stop())
    await remote.waitForLine(line => line.includes('"ready":true'), 10_000)
    await playInOrder(t, FILE, name)

    t.match(await podman('logs', `${POD}-validate`), /validate: ok[\s\S]*ipv4 capture: passed, uid 1000[\s\S]*ipv6 capture: passed, uid 1000/)
    t.equal(await podman('inspect', `${POD}-validate`, '--format', '{{.State.ExitCode}}'), '0', 'the validate init container exited 0')
    t.match(
      await natRulesOf(POD),
      /-A OUTPUT -p tcp -m comment --comment "sidecar-redirect\/outbound" -j SIDECAR_OUTBOUND/,
      "the plugin's rules are in the pod",
    )

    const containers = await containersOf(POD)
    t.same(containers.sort(), [`${POD}-app`, `${POD}-proxy`, `${POD}-validate`], 'the pod has validate, proxy and app')
    for (const container of containers) {
      t.equal(
        await podman(
          'inspect',
          container,
          '--format',
          'add={{.HostConfig.CapAdd}} effective={{.EffectiveCaps}} bounding={{.BoundingCaps}} privileged={{.HostConfig.Privileged}}',
        ),
        'add=[] effective=[] bounding=[] privileged=false',
        `${container}: no capability added, none effective, an empty bounding set`,
      )
    }
    // The pause process is the runtime's, as the kubelet's sandbox container is: podman's default set, which has
    // no NET_ADMIN; it only holds the namespaces.
    const infra = await podman('pod', 'inspect', POD, '--format', '{{.InfraContainerID}}')
    t.notMatch(await podman('inspect', infra, '--format', '{{.EffectiveCaps}}'), 'CAP_NET_ADMIN', 'the infra container has no NET_ADMIN either')

    const app = Number(await podman('inspect', `${POD}-app`, '--format', '{{.State.Pid}}'))
    const agent = Number(await podman('inspect', `${POD}-proxy`, '--format', '{{.State.Pid}}'))
    const proxy = Number(readFileSync(`/proc/${agent}/task/${agent}/children`, 'utf8').trim().split(/\s+/)[0])
    for (const [what, pid, uid] of [
      ['app', app, 1000],
      ['agent', agent, 1337],
      ['proxy', proxy, 1337],
    ] as const) {
      const status = readStatus(pid)
      t.same(
        [status.uids, status.capEff, status.capPrm, status.capInh, status.capAmb, status.capBnd],
        [[uid, uid, uid, uid], 0n, 0n, 0n, 0n, 0n],
        `${what}: UID ${uid}, every capability set empty, read from the host`,
      )
    }

    await waitForLog(`${POD}-app`, '"ready":true')
    const relays: string[] = []
    for (const [family, field, gatewayField] of [
      ['ipv4', 'IPAddress', 'Gateway'],
      ['ipv6', 'GlobalIPv6Address', 'IPv6Gateway'],
    ] as const) {
      const [address, gateway] = [await addressOf(POD, name, field), await addressOf(POD, name, gatewayField)]
      t.equal((await connect(`${POD}-app`, gateway, 9090)).label, 'remote', `${family}: app -> the node's server answered by the server`)
      const inbound = JSON.parse(await fromNode(node, ['connect', address, '8080'])) as { reply?: { label?: string } }
      t.equal(inbound.reply?.label, 'app', `${family}: node -> pod answered by the app`)
      relays.push(`{"relayed":{"from":"${address}","to":"${gateway}:9090"}}`, `{"relayed":{"from":"${gateway}","to":"${address}:8080"}}`)
    }
    const logs = (await podman('logs', `${POD}-proxy`)).split('\n').filter(line => line.includes('"relayed"'))
    t.same(logs, relays, 'each connection went through the proxy once, with its original destination, and nothing else did')
    t.same(
      await hostLinesNaming(['198.19.20.', '2001:db8:20:', bridge]),
      [],
      "the machine's own namespace has no bridge, address, route or rule of the pod's network",
    )
  },
)

t.test('with captureAll false the plugin captures nothing, validate exits 9, and the app and proxy never start', async t => {
  if (!kernelAvailable(t)) return
  const node = await startPodmanNode(t, [POD])
  const { name } = podmanNetwork(node.rig, { settings: SETTINGS, captureAll: false }, [
    [{ subnet: '198.19.21.0/24' }],
    [{ subnet: '2001:db8:21::/64' }],
  ])
  // Never: otherwise the failing init container would be restarted, as the policy says.
  writeFileSync(`${node.rig.dir}/pod.yaml`, readFileSync(FILE, 'utf8').replace('restartPolicy: OnFailure', 'restartPolicy: Never'))
  const { file } = runSpec(`${node.rig.dir}/pod.yaml`)
  t.teardown(() => runPodman(['kube', 'down', file]))
  const played = await runPodman(['kube', 'play', '--network', name, file])
  t.not(played.exitCode, 0, 'kube play fails')
  t.match(played.output, /init container .* exited with code 9/)
  t.match(await podman('logs', `${POD}-validate`), /the pod's traffic is not captured[\s\S]*ipv4 capture: failed, uid 1000/)
  t.notMatch(await natRulesOf(POD), 'SIDECAR_', 'no rule of ours is in the pod')
  const states = await podman('ps', '-a', '--filter', `pod=${POD}`, '--format', '{{.Names}} {{.State}}')
  t.match(states, new RegExp(`${POD}-app (created|configured)`, 'i'), 'the app container never ran')
  t.match(states, new RegExp(`${POD}-proxy (created|configured)`, 'i'), 'the proxy container never ran')
})

t.test(
  'method explicit in CNI mode: validate passes with the listed services, and a connection to one goes through the proxy while others go direct',
  async t => {
    if (!kernelAvailable(t)) return
    const node = await startPodmanNode(t, [POD])
    const services = '198.19.22.1/32:9090,[2001:db8:22::1/128]:9090'
    const settings = { ...SETTINGS, ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: services }
    const { name } = podmanNetwork(node.rig, { captureAll: true, settings }, [[{ subnet: '198.19.22.0/24' }], [{ subnet: '2001:db8:22::/64' }]])
    const remote = startProcess('nsenter', [`--net=${node.netns}`, process.execPath, programs().peer, 'serve', 'remote=[::]:9090', 'other=[::]:9091'])
    t.teardown(() => remote.stop())
    await remote.waitForLine(line => line.includes('"ready":true'))
    // The example pod, with validate told the same method and services as the node (as the chart renders both).
    const file = `${node.rig.dir}/pod-explicit.yaml`
    writeFileSync(
      file,
      readFileSync(FILE, 'utf8').replace(
        '        - { name: ISTIO_PROXY_PORT, value: "5001" }\n',
        `        - { name: ISTIO_PROXY_PORT, value: "5001" }\n        - { name: ISTIO_OUTBOUND_METHOD, value: explicit }\n        - { name: ISTIO_SERVICES, value: "${services}" }\n`,
      ),
    )
    await playInOrder(t, file, name)
    t.match(
      await podman('logs', `${POD}-validate`),
      /validate: ok[\s\S]*ipv4 out eth0: passed, uid 1000 .* -> 198\.19\.22\.1:9090[\s\S]*ipv6 out eth0: passed, .* -> \[2001:db8:22::1\]:9090/,
    )
    await waitForLog(`${POD}-app`, '"ready":true')
    for (const gateway of ['198.19.22.1', '2001:db8:22::1']) {
      t.equal((await connect(`${POD}-app`, gateway, 9090)).label, 'remote', `${gateway}:9090, a listed service, answered`)
      t.equal((await connect(`${POD}-app`, gateway, 9091)).label, 'other', `${gateway}:9091, not listed, answered`)
    }
    const relayed = (await podman('logs', `${POD}-proxy`)).split('\n').filter(line => line.includes('"relayed"'))
    t.equal(relayed.length, 2, 'only the listed service went through the proxy', { relayed })
    t.ok(
      relayed.every(line => /"to":"(198\.19\.22\.1|2001:db8:22::1):9090"/.test(line)),
      'to its original destination',
    )
  },
)
