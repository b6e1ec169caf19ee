// Injection in CNI mode under a real container runtime: `entrypoint inject --inject-mode cni` puts validate and
// Debian's squid (a proxy image that is not ours, scripts/image/squid.sh) into a Deployment's pod template; podman's
// CNI backend with our plugin last in the conflist (the node agent run from this checkout) captures the pod from
// the node, and the pod runs in the kubelet's order, native and classic layout. No container has a capability;
// validate passes; the app's traffic goes through squid both ways, in both families. Needs the image and the CNI
// setup (npm run test:cni).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t from 'tap'
import { runForStatus, startProcess } from '../../../src/exec/processes.js'
import { type Answer, HTTP_CLIENT, HTTP_SERVER } from '../../helpers/http-peers.js'
import { deployment, injectToPod } from '../../helpers/injected.js'
import { kernelAvailable } from '../../helpers/kernel.js'
import { playAsKubelet } from '../../helpers/kubelet.js'
import { addressOf, IMAGE, podman, ROOT, runPodman, unique, waitForLog } from '../../helpers/podman.js'
import { type Node, podmanNetwork, startPodmanNode } from '../../helpers/podman-cni.js'

const SQUID = 'localhost/sr-squid:bookworm'
const SCRATCH = mkdtempSync(`${tmpdir()}/sr-inject-cni-`)
t.teardown(() => rmSync(SCRATCH, { recursive: true, force: true }))

const inNode = (node: Node, script: string, args: string[] = [], env: Record<string, string> = {}) =>
  runForStatus('nsenter', [`--net=${node.netns}`, process.execPath, '-e', script, ...args], { PATH: process.env['PATH'], ...env })

const TCP_CHECK =
  "const s=require('net').connect(Number(process.argv[2]),process.argv[1],()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),1000)"

const answerOf = (output: string): Answer => JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as Answer

t.before(async () => {
  const built = await runForStatus('bash', [`${ROOT}scripts/image/squid.sh`])
  if (built.exitCode !== 0) throw new Error(`scripts/image/squid.sh: ${built.output}`)
})

for (const [n, layout] of [
  [1, 'native'],
  [2, 'classic'],
] as const) {
  t.test(`mode cni, ${layout} layout: validate passes, no capability anywhere, squid relays the app's traffic both ways`, async t => {
    if (!kernelAvailable(t)) return
    const name = unique(`sr-injcni-${layout}`)
    const node = await startPodmanNode(t, [name])
    const { name: network } = podmanNetwork(node.rig, { settings: { ISTIO_PROXY_PORT: '3128' }, captureAll: true }, [
      [{ subnet: `198.19.3${n}.0/24` }],
      [{ subnet: `2001:db8:3${n}::/64` }],
    ])
    const remote = startProcess('nsenter', [`--net=${node.netns}`, process.execPath, '-e', HTTP_SERVER], {
      PATH: process.env['PATH'],
      LABEL: 'remote',
      PORT: '9090',
    })
    t.teardown(() => remote.stop())
    await remote.waitForLine(line => line.includes('"ready":true'), 10_000)

    const pod = await injectToPod(
      SCRATCH,
      deployment('web'),
      {
        ISTIO_PROXY_PORT: '3128',
        ISTIO_INJECT_MODE: 'cni',
        ISTIO_INJECT_IMAGE: IMAGE,
        ISTIO_INJECT_PULL_POLICY: 'Never',
        ISTIO_INJECT_PROXY_IMAGE: SQUID,
        ISTIO_INJECT_LAYOUT: layout,
      },
      name,
    )
    t.equal(pod['metadata'].annotations['sidecar-redirect.io/capture'], 'enabled', "the plugin's opt-in annotation")
    const played = await playAsKubelet(t, pod, {
      file: `${SCRATCH}/${name}.yaml`,
      network,
      connect: async (host, port) => (await inNode(node, TCP_CHECK, [host, String(port)])).exitCode === 0,
      address: p => addressOf(p, network),
    })
    t.same(
      played.steps,
      layout === 'native'
        ? ['init sidecar-redirect-validate', 'sidecar sidecar-redirect-proxy', 'probe sidecar-redirect-proxy', 'start app']
        : [
            'init sidecar-redirect-validate',
            'start sidecar-redirect-proxy',
            'start sidecar-redirect-hold',
            'hook sidecar-redirect-hold',
            'start app',
          ],
      'validate first of ours, then the proxy, then the app',
    )
    t.match(
      await podman('logs', played.container('sidecar-redirect-validate')),
      /validate: ok[\s\S]*ipv4 capture: passed, uid 65532/,
      'validate proved capture',
    )
    const containers = (await podman('ps', '-a', '--filter', `pod=${name}`, '--format', '{{.Names}}')).split('\n').filter(c => !c.endsWith('-infra'))
    for (const container of containers) {
      t.equal(
        await podman('inspect', container, '--format', 'add={{.HostConfig.CapAdd}} effective={{.EffectiveCaps}} bounding={{.BoundingCaps}}'),
        'add=[] effective=[] bounding=[]',
        `${container}: no capability`,
      )
    }

    await waitForLog(played.container('app'), '"ready":true')
    for (const [family, field, gatewayField] of [
      ['ipv4', 'IPAddress', 'Gateway'],
      ['ipv6', 'GlobalIPv6Address', 'IPv6Gateway'],
    ] as const) {
      const [address, gateway] = [await addressOf(name, network, field), await addressOf(name, network, gatewayField)]
      const host = (a: string) => (family === 'ipv6' ? `[${a}]` : a)
      const out = answerOf(
        (await runPodman(['exec', played.container('app'), '/usr/local/bin/node', '-e', HTTP_CLIENT, `http://${host(gateway)}:9090/out`])).output,
      )
      t.match(out, { status: 200, body: { label: 'remote', via: /squid/ } }, `${family}: app -> the node's server, through squid`)
      const inbound = answerOf((await inNode(node, HTTP_CLIENT, [`http://${host(address)}:8080/in`])).output)
      t.match(inbound, { status: 200, body: { label: 'app', via: /squid/ } }, `${family}: node -> app, through squid`)
    }
    const log = await podman('logs', played.container('sidecar-redirect-proxy'))
    t.equal(log.split('\n').filter(l => / ORIGINAL_DST\//.test(l)).length, 4, "squid's log: the four requests, each to its original destination")
  })
}
