// The capture features, decided by traffic on every backend and in both families: a separate inbound port, and
// interface exclusions over a second veth pair between the pod and the remote; then auto on an nft-only node. Each backend's run ends with
// verify (exact read-back and the whole-path check, which must not flag our own rules), a rollback that restores
// the earlier rules, and clean, which leaves exactly what was there before.
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import {
  addSidePair,
  initOk,
  kernelAvailable,
  POD,
  POD6,
  REMOTE,
  REMOTE6,
  refusedThenClean,
  SIDE,
  snapshot,
  withSandbox,
} from '../../helpers/kernel.js'
import { pathWithout } from '../../helpers/paths.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectBypassed, expectCaptured } from '../../helpers/traffic.js'

const FAMILIES = [
  { pod: POD, remote: REMOTE, sidePod: SIDE.pod, sideRemote: SIDE.remote },
  { pod: POD6, remote: REMOTE6, sidePod: SIDE.pod6, sideRemote: SIDE.remote6 },
] as const

/** The connection lands on the listener `label`, which saw the original destination. */
const expectLanding = async (t: Test, box: Sandbox, from: 'pod' | 'remote', host: string, port: number, label: string): Promise<void> => {
  const result = await box.connect(from, host, port)
  t.same(
    { label: result.reply?.label, originalDst: result.reply?.originalDst },
    { label, originalDst: { address: host, port } },
    `${from} -> ${host}:${port} lands on ${label}`,
    { result },
  )
}

const SCENARIOS: Record<string, { env: Record<string, string>; check: (t: Test, box: Sandbox) => Promise<void> }> = {
  'inbound goes to ISTIO_INBOUND_CAPTURE_PORT, outbound to the proxy port': {
    env: { ISTIO_PROXY_PORT: '15001', ISTIO_INBOUND_CAPTURE_PORT: '15006' },
    check: async (t, box) => {
      for (const { pod, remote } of FAMILIES) {
        await expectLanding(t, box, 'remote', pod, 8080, 'inbound-15006')
        await expectLanding(t, box, 'pod', remote, 9090, 'proxy-15001')
        await expectBypassed(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1337 } }, 'remote')
      }
    },
  },
  'nothing in or out on an excluded interface is captured; on the other one it is': {
    env: { ISTIO_EXCLUDE_INTERFACES: 'side0' },
    check: async (t, box) => {
      for (const { pod, remote, sidePod, sideRemote } of FAMILIES) {
        await expectBypassed(t, box, { from: 'pod', host: sideRemote, port: 9090 }, 'remote')
        await expectBypassed(t, box, { from: 'remote', host: sidePod, port: 8080 }, 'app')
        await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090 })
        await expectCaptured(t, box, { from: 'remote', host: pod, port: 8080 })
      }
    },
  },
}

for (const backend of BACKENDS) {
  t.test(backend, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await addSidePair(box)
    await box.serve('pod', ['proxy=[::]:5001', 'proxy-15001=[::]:15001', 'inbound-15006=[::]:15006', 'app=[::]:8080'])
    await box.serve('remote', ['remote=[::]:9090'])
    // Foreign rules in every nat table, so the tables exist before as after (clean cannot un-create a table).
    for (const tool of ['iptables-nft', 'ip6tables-nft', 'iptables-legacy', 'ip6tables-legacy']) {
      for (const chain of ['PREROUTING', 'OUTPUT']) await box.exec('pod', tool, ['-t', 'nat', '-A', chain, '-p', 'udp', '-j', 'RETURN'])
    }
    const before = await snapshot(box)
    for (const [name, scenario] of Object.entries(SCENARIOS)) {
      await t.test(name, async t => {
        const env = { ISTIO_BACKEND: backend, ...scenario.env }
        await initOk(t, box, env)
        await scenario.check(t, box)
        await initOk(t, box, env, ['verify'])
      })
    }
    const all: Record<string, string> = Object.assign({ ISTIO_BACKEND: backend }, ...Object.values(SCENARIOS).map(s => s.env))
    // nftables writes both families in one transaction, which is refused whole; the iptables backends roll the
    // family that was applied back when the other is refused.
    await refusedThenClean(t, box, backend, all, { ISTIO_INBOUND_CAPTURE_PORT: '15007', ISTIO_EXCLUDE_INTERFACES: 'side1' }, before)
  })
}

t.test('the live probe with lo excluded: its in-pod connections are not captured, so it says not checked and why', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  // lo has no routes in the main table (its addresses are in the local table): by its routes it exempts nothing.
  t.match(
    await initOk(t, box, { ISTIO_VERIFY: 'live', ISTIO_EXCLUDE_INTERFACES: 'lo' }),
    /ipv4 capture: passed/,
    'scope routes: lo exempts no destination',
  )
  const report = await initOk(t, box, { ISTIO_VERIFY: 'live', ISTIO_EXCLUDE_INTERFACES: 'lo', ISTIO_EXCLUDE_INTERFACES_SCOPE: 'all' })
  t.match(report, /ipv4 capture: not checked, ISTIO_EXCLUDE_INTERFACES leaves lo alone, and every probe connection stays in the pod on lo/)
  t.notMatch(report, /: failed/)
  t.match(await initOk(t, box, { ISTIO_VERIFY: 'live' }), /ipv4 capture: passed/, 'without it the probe checks capture')
})

t.test('the whole-path check knows an excluded interface: a foreign DNAT there is no escape, elsewhere it is', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await addSidePair(box)
  await box.serve('pod', ['proxy=[::]:5001', 'app=[::]:8080', 'app-8081=[::]:8081'])
  // In the variant we do not use, at the same nat priority as ours: it would win the binding for what it matches.
  await box.exec('pod', 'iptables-legacy', [
    '-t',
    'nat',
    '-A',
    'PREROUTING',
    '-i',
    'side0',
    '-p',
    'tcp',
    '-j',
    'DNAT',
    '--to-destination',
    `${SIDE.pod}:8081`,
  ])
  const env = { ISTIO_BACKEND: 'iptables-nft', ISTIO_EXCLUDE_INTERFACES: 'side0' }
  await initOk(t, box, env)
  const result = await box.connect('remote', SIDE.pod, 8080)
  t.same(result.reply?.label, 'app-8081', 'over side0 the foreign DNAT decides, and we never meant to capture it', { result })
  await expectCaptured(t, box, { from: 'remote', host: POD, port: 8080 })
  const unexcluded = await box.runInit({ ISTIO_VERIFY: 'rules', ISTIO_BACKEND: 'iptables-nft' })
  t.equal(unexcluded.exitCode, 5, 'without the exclusion the same rule is an escape', { output: unexcluded.output })
  t.match(unexcluded.output, /iptables-legacy ipv4 nat PREROUTING rule 1: -A PREROUTING -i side0 -p tcp -j DNAT/)
})

t.test('an nft-only node: with the iptables programs hidden from PATH, auto gets native nftables and says why', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await box.serve('pod', ['proxy=[::]:5001', 'app=[::]:8080'])
  await box.serve('remote', ['remote=[::]:9090'])
  const noIptables = { PATH: pathWithout(/^(ip6?tables|xtables)/) }
  const output = await initOk(t, box, noIptables)
  t.match(
    output,
    /backend\s+nftables: iptables-nft-save, iptables-nft-restore, ip6tables-nft-save, ip6tables-nft-restore are not on PATH; native nftables needs neither/,
  )
  for (const [pod, remote] of [
    [POD, REMOTE],
    [POD6, REMOTE6],
  ] as const) {
    await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090 })
    await expectCaptured(t, box, { from: 'remote', host: pod, port: 8080 })
  }
  await initOk(t, box, noIptables, ['verify'])
  const written = await snapshot(box)
  t.notMatch(written.split('== iptables-legacy-save')[1], /SIDECAR/, 'nothing in iptables-legacy')
  t.notMatch(written, /SIDECAR_/, 'nothing in iptables-nft')
  const neither = await box.runInit({ ISTIO_VERIFY: 'rules', PATH: pathWithout(/^(ip6?tables|xtables|nft$)/) })
  t.equal(neither.exitCode, 3, 'neither backend can work: exit 3', { output: neither.output })
  t.match(neither.output, /no backend can work here: .*ip6tables-nft-restore are not on PATH, and nft \(the nftables package\) is not on PATH either/)
  t.equal(await snapshot(box), written, 'and nothing changed')
  await initOk(t, box, noIptables, ['clean'])
  t.notMatch(await snapshot(box), /sidecar/, 'clean under auto removes our table')
})
