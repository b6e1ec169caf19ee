// Injected pods under containerd's CRI, run as the kubelet runs them (test/helpers/cri): a Deployment put through
// `entrypoint inject` with Debian's squid (a proxy image that is not ours, saved by scripts/cri/setup.sh) as the
// proxy, in mode init and in mode cni (our plugin on the node with captureAll off: only the annotation injection
// adds opts the pod in), native and classic layout. The kubelet's own prober runs the TCP startup probe through
// the pod's address; the app's traffic goes through squid both ways, in both families.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t from 'tap'
import { type Answer, HTTP_CLIENT, HTTP_SERVER } from '../helpers/http-peers.js'
import { IMAGE, type Node, privilegesOf, runPod, startNode } from '../helpers/cri/index.js'
import { deployment, injectToPod } from '../helpers/injected.js'
import { kernelAvailable } from '../helpers/kernel.js'
import { ROOT } from '../helpers/podman.js'

const SQUID = 'localhost/sr-squid:bookworm'
const SQUID_ARCHIVE = `${ROOT}.tools/cri/squid.tar`
const SCRATCH = mkdtempSync(`${tmpdir()}/sr-inject-cri-`)
t.teardown(() => rmSync(SCRATCH, { recursive: true, force: true }))

const answerOf = (output: string): Answer => JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as Answer

const nodes: Partial<Record<'init' | 'cni', Node>> = {}
t.before(async () => {
  if (process.getuid?.() !== 0) return
  nodes.init = await startNode(t, { archives: [SQUID_ARCHIVE] })
  nodes.cni = await startNode(t, { archives: [SQUID_ARCHIVE], cni: { settings: { ISTIO_PROXY_PORT: '3128' }, captureAll: false } })
  for (const node of Object.values(nodes)) {
    const server = node.spawn('/usr/bin/env', ['LABEL=remote', 'PORT=9090', process.execPath, '-e', HTTP_SERVER])
    t.teardown(() => server.stop())
    await server.waitForLine(line => line.includes('"ready":true'), 10_000)
  }
})

for (const mode of ['init', 'cni'] as const) {
  for (const layout of ['native', 'classic'] as const) {
    t.test(`CRI, mode ${mode}, ${layout} layout: squid as the user's proxy relays the app's traffic both ways, in both families`, async t => {
      if (!kernelAvailable(t)) return
      const node = nodes[mode]!
      const pod = await injectToPod(
        SCRATCH,
        deployment('web', IMAGE),
        {
          ISTIO_PROXY_PORT: '3128',
          ISTIO_INJECT_MODE: mode,
          ISTIO_INJECT_IMAGE: IMAGE,
          ISTIO_INJECT_PULL_POLICY: 'Never',
          ISTIO_INJECT_PROXY_IMAGE: SQUID,
          ISTIO_INJECT_LAYOUT: layout,
        },
        `web-${mode}-${layout}`,
      )
      const running = await runPod(node, pod)
      t.equal(running.status, 'Running', JSON.stringify(running.failure))
      const first = mode === 'init' ? 'sidecar-redirect-init' : 'sidecar-redirect-validate'
      const started = running.events.filter(e => e.type === 'Started').map(e => e.container)
      t.same(
        started,
        layout === 'native' ? [first, 'sidecar-redirect-proxy', 'app'] : [first, 'sidecar-redirect-proxy', 'sidecar-redirect-hold', 'app'],
        `the kubelet's order: ${started.join(', ')}`,
      )
      if (layout === 'native') {
        const probed = running.events.find(e => e.type === 'ProbePassed' && e.container === 'sidecar-redirect-proxy')
        const app = running.events.find(e => e.type === 'Created' && e.container === 'app')
        t.ok(probed && app && app.at >= probed.at, "the app was created once the proxy's TCP startup probe passed")
      }
      if (mode === 'cni') {
        t.match(
          running.logs(first).join('\n'),
          /validate: ok[\s\S]*ipv4 capture: passed[\s\S]*ipv6 capture: passed/,
          'validate proved capture in both families',
        )
        const [add] = node.agent!.lines.filter(line => line.includes(`cni: ADD ${running.sandboxId} `))
        t.match(
          add,
          /exit 0: sidecar-redirect: ADD \S+: captured \(annotation sidecar-redirect\.io\/capture=enabled\)/,
          "the plugin captured the pod through containerd, opted in by injection's annotation alone (captureAll is off)",
        )
      }
      const proxy = await running.container('sidecar-redirect-proxy')
      t.same(privilegesOf(proxy.startStatus!).slice(0, 2), [[1337, 1337, 1337, 1337], 0n], 'squid: UID 1337, no capability')

      await running.waitForLog('app', '"ready":true')
      const gateways = [node.gateways.ipv4, `[${node.gateways.ipv6}]`]
      const addresses = [running.ips.find(ip => !ip.includes(':'))!, `[${running.ips.find(ip => ip.includes(':'))!}]`]
      for (const [i, family] of ['ipv4', 'ipv6'].entries()) {
        const out = answerOf((await running.exec('app', ['/usr/local/bin/node', '-e', HTTP_CLIENT, `http://${gateways[i]}:9090/out`])).stdout)
        t.match(out, { status: 200, body: { label: 'remote', via: /squid/ } }, `${family}: app -> the node's server, through squid`)
        const inbound = answerOf((await node.run(process.execPath, ['-e', HTTP_CLIENT, `http://${addresses[i]}:8080/in`])).output)
        t.match(inbound, { status: 200, body: { label: 'app', via: /squid/ } }, `${family}: node -> app, through squid`)
      }
      t.equal(
        running.logs('sidecar-redirect-proxy').filter(l => / ORIGINAL_DST\//.test(l)).length,
        4,
        "squid's log: four requests, each to its original destination",
      )
      await running.stop({ gracePeriodSeconds: 5 })
    })
  }
}
