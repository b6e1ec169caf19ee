// The capture features as plan modules: what each adds, where, and that the table of them is complete.
import t from 'tap'
import { buildPlan } from '../../src/plan/build.js'
import { contributions, FEATURES } from '../../src/plan/features/index.js'
import type { InboundCapture } from '../../src/plan/features/types.js'
import { PURPOSES } from '../../src/plan/owned.js'
import { renderNftTable } from '../../src/backend/nftables/render-nft.js'
import { parseSettings } from '../../src/settings/parse.js'
import { FAMILIES } from '../../src/settings/types.js'

const chains = (env: Record<string, string>) =>
  buildPlan(parseSettings(env), FAMILIES).families.map(f => ({
    family: f.family,
    inbound: f.chains.find(c => c.hook === 'PREROUTING')!.rules,
    outbound: f.chains.find(c => c.hook === 'OUTPUT')!.rules,
  }))

t.test('every feature is in the table', async t => {
  t.same(Object.keys(FEATURES).sort(), ['exclude-interfaces', 'inbound-capture-port', 'tproxy'])
})

t.test('the inbound capture port takes inbound only; outbound stays on the proxy port', async t => {
  for (const { family, inbound, outbound } of chains({ ISTIO_PROXY_PORT: '15001', ISTIO_INBOUND_CAPTURE_PORT: '15006' })) {
    t.same(
      inbound.filter(r => r.target.kind === 'redirect').map(r => r.target),
      [{ kind: 'redirect', port: 15006 }],
      `${family} inbound`,
    )
    t.same(
      outbound.filter(r => r.target.kind === 'redirect').map(r => r.target),
      [{ kind: 'redirect', port: 15001 }],
      `${family} outbound`,
    )
  }
  for (const { inbound } of chains({ ISTIO_PROXY_PORT: '15001' })) {
    t.same(inbound.find(r => r.target.kind === 'redirect')?.target, { kind: 'redirect', port: 15001 }, 'empty means the proxy port')
  }
})

t.test('excluded interfaces are bypassed both ways, ahead of every capture, in both families', async t => {
  for (const { family, inbound, outbound } of chains({ ISTIO_EXCLUDE_INTERFACES: 'eth1, eth2,eth1', ISTIO_INBOUND_EXCLUDE_PORTS: '22' })) {
    const names = (rules: typeof inbound, kind: string) =>
      rules.flatMap(r => r.matches.flatMap(m => (m.kind === kind && 'name' in m ? [m.name] : [])))
    t.same(names(inbound, 'in-interface'), ['eth1', 'eth2'], `${family}: in by name, each once`)
    t.same(names(outbound, 'out-interface'), ['eth1', 'eth2'], `${family}: out by name`)
    for (const rules of [inbound, outbound]) {
      const kinds = rules.map(r => r.target.kind)
      t.ok(kinds.lastIndexOf('return') < kinds.indexOf('redirect'), `${family}: bypasses first`)
    }
  }
  const table = renderNftTable(buildPlan(parseSettings({ ISTIO_EXCLUDE_INTERFACES: 'eth1' }), FAMILIES))
  t.match(table, /meta l4proto tcp iifname "eth1" return comment "sidecar-redirect\/inbound-exclude-interface"\n/)
  t.equal(table.split('oifname "eth1"').length, 2, 'nft: one rule for both families')
})

t.test('with nothing captured inbound, no interface exclusion is written there', async t => {
  for (const { inbound } of chains({ ISTIO_EXCLUDE_INTERFACES: 'eth1', ISTIO_INBOUND_PORTS: '' })) t.same(inbound, [])
})

t.test('the new rules carry purposes of their own', async t => {
  for (const p of ['inbound-exclude-interface', 'outbound-exclude-interface'] as const) t.ok(PURPOSES.includes(p), p)
})

t.test('two features deciding the inbound port is refused, not settled by order', async t => {
  const settings = parseSettings({})
  t.throws(
    () => contributions(settings, 'ipv4', { a: () => ({ inboundPort: 1 }), b: () => ({ inboundPort: 2 }) }),
    /features a and b both decide the inbound port/,
  )
  t.equal(contributions(settings, 'ipv4', { a: () => ({ inboundPort: 1 }), b: () => ({}) }).inboundPort, 1)
})

t.test('TPROXY: inbound leaves nat for mangle, after the loopback and established exemptions, with the routing beside', async t => {
  const env = { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_CAPTURE_PORT: '15006', ISTIO_INBOUND_EXCLUDE_PORTS: '22' }
  for (const plan of buildPlan(parseSettings({ ...env, ISTIO_EXCLUDE_INTERFACES: 'eth1' }), FAMILIES).families) {
    t.same(
      plan.chains.map(c => [c.name, c.table, c.hook]),
      [
        ['SIDECAR_TPROXY', 'mangle', 'PREROUTING'],
        ['SIDECAR_OUTBOUND', 'nat', 'OUTPUT'],
        ['SIDECAR_TPROXY_MARK', 'mangle', 'OUTPUT'],
      ],
      `${plan.family}: no nat inbound chain`,
    )
    t.same(
      plan.chains[0]!.rules.map(r => [r.purpose, r.target.kind]),
      [
        ['tproxy-loopback', 'return'],
        ['tproxy-established', 'return'],
        ['inbound-exclude-port', 'return'],
        ['inbound-exclude-interface', 'return'],
        ['inbound-capture', 'tproxy'],
      ],
    )
    t.same(plan.chains[0]!.rules.at(-1)!.target, { kind: 'tproxy', port: 15006, mark: 1337 })
    t.same(plan.routing, { priority: 32000, mark: 1337, table: 133 })
  }
  const custom = buildPlan(parseSettings({ ...env, ISTIO_INBOUND_TPROXY_MARK: '0x10', ISTIO_INBOUND_TPROXY_ROUTE_TABLE: '200' }), ['ipv4'])
    .families[0]!
  t.same(custom.routing, { priority: 32000, mark: 16, table: 200 })
  t.same(
    custom.chains[2]!.rules.map(r => r.target),
    [
      { kind: 'connmark-set', mark: 16 },
      { kind: 'mark-set', mark: 16 },
    ],
  )
  for (const plan of buildPlan(parseSettings({}), FAMILIES).families) {
    t.same(
      plan.chains.map(c => c.name),
      ['SIDECAR_INBOUND', 'SIDECAR_OUTBOUND'],
      'REDIRECT: nothing in mangle',
    )
    t.equal(plan.routing, undefined, 'and no routing')
  }
})

t.test('two features deciding the routing or where inbound goes are refused too', async t => {
  const settings = parseSettings({})
  const routing = { priority: 1, mark: 1, table: 1 }
  t.throws(() => contributions(settings, 'ipv4', { a: () => ({ routing }), b: () => ({ routing }) }), /features a and b both decide routing/)
  const inboundCapture: InboundCapture = { chain: 'SIDECAR_TPROXY', lead: [], target: () => ({ kind: 'return' }) }
  t.throws(
    () => contributions(settings, 'ipv4', { a: () => ({ inboundCapture }), b: () => ({ inboundCapture }) }),
    /features a and b both decide inboundCapture/,
  )
})
