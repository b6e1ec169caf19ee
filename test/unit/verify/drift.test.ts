// Drift is a pure function of the plan and what was read: the same values from any backend give the same verdict,
// with no process, no kernel and no backend object. Reads are built here as a backend returns them.
import t from 'tap'
import { renderState } from '../../../src/backend/iptables/render-iptables.js'
import { renderNftTable } from '../../../src/backend/nftables/render-nft.js'
import type { Reads } from '../../../src/backend/types.js'
import type { Elsewhere } from '../../../src/backend/whole-path.js'
import { EnvironmentError } from '../../../src/errors.js'
import { seenTables } from '../../../src/path/from-iptables.js'
import { splitRuleset } from '../../../src/path/from-nft.js'
import { buildPlan } from '../../../src/plan/build.js'
import { tproxyRouting } from '../../../src/plan/features/tproxy.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { driftOf } from '../../../src/verify/drift.js'
import { savedText } from '../../helpers/saved.js'

const plan = buildPlan(parseSettings({}), ['ipv4', 'ipv6'])
const NOTHING_ELSE: Elsewhere = { ruleset: { tables: [], managed: new Set() }, iptables: new Map(), devices: [] }
const exact = new Map(plan.families.map(p => [p.family, savedText(renderState(p))]))
const iptables = (saved: ReadonlyMap<'ipv4' | 'ipv6', string>, elsewhere = NOTHING_ELSE): Reads => ({
  iptables: { tool: 'iptables-nft', saved, elsewhere },
})

t.test('iptables: the plan read back exactly is no drift, in each family', async t => {
  t.same(driftOf(plan, iptables(exact)), [
    { scope: 'ipv4', drift: [] },
    { scope: 'ipv6', drift: [] },
  ])
})

t.test('iptables: a rule gone is named as planned but missing; nothing of ours is absent', async t => {
  const v4 = exact.get('ipv4')!.split('\n')
  const dropped = v4.findIndex(l => l.startsWith('-A SIDECAR_OUTBOUND'))
  const drift = driftOf(plan, iptables(new Map([...exact, ['ipv4', v4.filter((_, i) => i !== dropped).join('\n')]])))
  t.match(drift[0], { scope: 'ipv4', drift: ['chain SIDECAR_OUTBOUND:', `- ${v4[dropped]}`] })
  t.notOk(drift[0]?.absent)
  t.same(driftOf(plan, iptables(new Map([...exact, ['ipv6', '']])))[1]?.absent, true, 'an empty family: absent')
})

t.test('iptables: a DNAT in the variant we do not use lets captured TCP escape, and is named', async t => {
  const legacy = '*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 198.18.0.2/32 -p tcp -j DNAT --to-destination 198.18.0.2:9\nCOMMIT\n'
  const elsewhere = { ...NOTHING_ELSE, iptables: new Map([['ipv4' as const, seenTables(legacy, 'ipv4', 'iptables-legacy')]]) }
  const drift = driftOf(plan, iptables(exact, elsewhere))
  t.match(drift[0]?.drift.join('\n'), /iptables-legacy ipv4 nat OUTPUT rule 1: .*DNAT/)
  t.same(drift[1]?.drift, [], 'the other family is not concerned')
})

t.test('iptables: a chain with our name that is not ours is refused, not diffed', async t => {
  const foreign = '*nat\n:OUTPUT ACCEPT [0:0]\n:SIDECAR_OUTBOUND - [0:0]\n-A SIDECAR_OUTBOUND -j ACCEPT\nCOMMIT\n'
  t.throws(() => driftOf(plan, iptables(new Map([...exact, ['ipv4', foreign]]))), EnvironmentError)
})

t.test('iptables: planned service sets are compared as sets, and a missing one named', async t => {
  const explicit = buildPlan(parseSettings({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.10:80' }), ['ipv4'])
  const saved = new Map([['ipv4' as const, savedText(renderState(explicit.families[0]!))]])
  const drift = driftOf(explicit, { iptables: { tool: 'iptables-nft', saved, sets: new Map(), elsewhere: NOTHING_ELSE } })
  t.match(drift.at(-1), { scope: 'ipset', absent: true, drift: [/^set SIDECAR_SVC4\S*: missing$/] })
})

t.test('nftables: our table as rendered is no drift; without it, absent and missing', async t => {
  const ruleset = { tables: splitRuleset(renderNftTable(plan)), managed: new Set<string>() }
  t.same(driftOf(plan, { nftables: { ruleset, elsewhere: { ...NOTHING_ELSE, ruleset } } }), [{ scope: 'inet', drift: [] }])
  t.same(driftOf(plan, { nftables: { ruleset: NOTHING_ELSE.ruleset, elsewhere: NOTHING_ELSE } }), [
    { scope: 'inet', drift: ['table inet sidecar_redirect: missing'], absent: true },
  ])
})

t.test('routing and lo: what is missing and what is foreign, after the rules', async t => {
  const settings = parseSettings({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' })
  const tproxy = buildPlan(settings, ['ipv4'])
  const routing = tproxyRouting(settings)
  const drift = driftOf(tproxy, {
    ...iptables(new Map([['ipv4', savedText(renderState(tproxy.families[0]!))]])),
    routing: [{ family: 'ipv4', routing, rule: false, route: true, foreign: ['unicast 198.18.9.0/24 dev lo scope link'] }],
    lo: { address: '::6/128', present: false },
  })
  t.same(
    drift.map(d => d.scope),
    ['ipv4', 'ipv4 routing', 'lo'],
  )
  t.same(drift[1]?.drift, [
    `- ip rule: ${routing.priority}:\tfrom all fwmark 0x${routing.mark.toString(16)} lookup ${routing.table}`,
    `+ ip route table ${routing.table}: unicast 198.18.9.0/24 dev lo scope link (not ours)`,
  ])
  t.same(drift[2], { scope: 'lo', drift: ['- address ::6/128 on lo: missing'] })
})
