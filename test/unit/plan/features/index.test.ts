// The capture features as plan modules: what each adds, where, and that the table of them is complete.
import t from 'tap'
import { buildPlan } from '../../../../src/plan/build.js'
import { contributions, FEATURES } from '../../../../src/plan/features/index.js'
import type { InboundCapture } from '../../../../src/plan/features/types.js'
import { PURPOSES } from '../../../../src/plan/owned.js'
import { renderNftTable } from '../../../../src/backend/nftables/render-nft.js'
import { parseSettings } from '../../../../src/settings/parse.js'
import { FAMILIES, type Cidr } from '../../../../src/settings/types.js'
import type { PlanFacts } from '../../../../src/plan/types.js'
import { parseCidr } from '../../../../src/settings/cidr.js'
import { loadSettings } from '../../../../src/settings/load.js'
import { parseNameservers } from '../../../../src/settings/resolv-conf.js'

const chains = (env: Record<string, string>, facts: PlanFacts = {}) =>
  buildPlan(parseSettings(env), FAMILIES, facts).families.map(f => ({
    family: f.family,
    inbound: f.chains.find(c => c.name === 'SIDECAR_INBOUND')!.rules,
    outbound: f.chains.find(c => c.name === 'SIDECAR_OUTBOUND')!.rules,
  }))

t.test('every feature is in the table', async t => {
  t.same(Object.keys(FEATURES).sort(), ['dns', 'exclude-interfaces', 'inbound-capture-port', 'tproxy'])
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

t.test('excluded interfaces (scope all) are bypassed both ways, ahead of every capture, in both families', async t => {
  const all = { ISTIO_EXCLUDE_INTERFACES_SCOPE: 'all' }
  for (const { family, inbound, outbound } of chains({ ...all, ISTIO_EXCLUDE_INTERFACES: 'eth1, eth2,eth1', ISTIO_INBOUND_EXCLUDE_PORTS: '22' })) {
    const names = (rules: typeof inbound, kind: string) =>
      rules.flatMap(r => r.matches.flatMap(m => (m.kind === kind && 'name' in m ? [m.name] : [])))
    t.same(names(inbound, 'in-interface'), ['eth1', 'eth2'], `${family}: in by name, each once`)
    t.same(names(outbound, 'out-interface'), ['eth1', 'eth2'], `${family}: out by name`)
    for (const rules of [inbound, outbound]) {
      const kinds = rules.map(r => r.target.kind)
      t.ok(kinds.lastIndexOf('return') < kinds.indexOf('redirect'), `${family}: bypasses first`)
    }
  }
  const table = renderNftTable(buildPlan(parseSettings({ ...all, ISTIO_EXCLUDE_INTERFACES: 'eth1' }), FAMILIES))
  t.match(table, /meta l4proto tcp iifname "eth1" return comment "sidecar-redirect\/inbound-exclude-interface"\n/)
  t.equal(table.split('oifname "eth1"').length, 2, 'nft: one rule for both families')
})

t.test("excluded interfaces (scope routes, the default): outbound exempt only to the interface's own routes, per family", async t => {
  const routes = ['198.18.1.0/24', '198.18.9.9', '2001:db8:1::/64', '198.18.1.0/24'].map(c => parseCidr(c)!)
  const facts: PlanFacts = { interfaceRoutes: new Map([['eth1', routes]]) }
  const [v4, v6] = chains({ ISTIO_EXCLUDE_INTERFACES: 'eth1,eth2' }, facts)
  const exempt = (rules: NonNullable<typeof v4>['outbound']) =>
    rules
      .filter(r => r.purpose === 'outbound-exclude-interface')
      .map(r => r.matches.map(m => (m.kind === 'destination' ? `${m.cidr.address}/${m.cidr.prefix}` : m.kind === 'out-interface' ? m.name : m.kind)))
  t.same(
    exempt(v4!.outbound),
    [
      ['198.18.1.0/24', 'eth1'],
      ['198.18.9.9/32', 'eth1'],
    ],
    'ipv4: each route once, with the interface; eth2 has none',
  )
  t.same(exempt(v6!.outbound), [['2001:db8:1::/64', 'eth1']], 'ipv6: its own routes')
  t.same(
    v4!.inbound.filter(r => r.purpose === 'inbound-exclude-interface').map(r => r.matches),
    [[{ kind: 'in-interface', name: 'eth1' }], [{ kind: 'in-interface', name: 'eth2' }]],
    'inbound: by name, whatever the routes',
  )
  t.same(exempt(chains({ ISTIO_EXCLUDE_INTERFACES: 'eth1' })[0]!.outbound), [], 'no routes read: nothing leaving by it is exempt')
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

const NS = [
  { family: 'ipv4', address: '198.18.0.53', prefix: 32 },
  { family: 'ipv6', address: '2001:db8::53', prefix: 128 },
] as const

const dnsPlan = (env: Record<string, string>, nameservers: readonly Cidr[] = NS) =>
  buildPlan({ ...parseSettings(env), nameservers }, FAMILIES).families.map(f => ({
    family: f.family,
    chains: f.chains.map(c => `${c.table} ${c.hook} ${c.name}`),
    byName: (name: string) => f.chains.find(c => c.name === name)?.rules ?? [],
  }))

t.test('dns off: nothing but the nat capture chains', async t => {
  for (const p of dnsPlan({})) t.same(p.chains, ['nat PREROUTING SIDECAR_INBOUND', 'nat OUTPUT SIDECAR_OUTBOUND'])
})

t.test('dns: a raw zone chain and a nat chain ahead of the TCP capture, UDP and TCP, per nameserver of the family', async t => {
  for (const p of dnsPlan({ ISTIO_DNS_CAPTURE: 'resolv-conf' })) {
    t.same(p.chains, ['raw OUTPUT SIDECAR_DNS_ZONE_OUT', 'nat OUTPUT SIDECAR_DNS', 'nat PREROUTING SIDECAR_INBOUND', 'nat OUTPUT SIDECAR_OUTBOUND'])
    const capture = p.byName('SIDECAR_DNS').filter(r => r.target.kind === 'redirect')
    t.same(
      capture.map(r => [r.protocol, r.matches]),
      ['udp', 'tcp'].map(protocol => [
        protocol,
        [
          { kind: 'destination', cidr: NS.find(n => n.family === p.family) },
          { kind: 'dport', ports: [{ from: 53, to: 53 }] },
        ],
      ]),
      `${p.family}: its own nameserver only`,
    )
    const zones = p.byName('SIDECAR_DNS_ZONE_OUT').map(r => [r.purpose, r.target])
    t.same(
      zones.map(([purpose]) => purpose),
      ['dns-proxy-query', 'dns-app-query'],
      `${p.family}: the proxy's query is zoned before the app's rule, which it also matches`,
    )
    t.ok(
      p.byName('SIDECAR_DNS_ZONE_OUT').every(r => r.protocol === 'udp'),
      `${p.family}: UDP only (SO_ORIGINAL_DST finds TCP in the default zone only)`,
    )
  }
})

t.test('dns: the proxy is told apart by the active method, and by its GID too', async t => {
  const ids = (env: Record<string, string>) =>
    dnsPlan({ ISTIO_DNS_CAPTURE: 'all', ...env })[0]!
      .byName('SIDECAR_DNS')
      .filter(r => r.target.kind === 'return')
      .map(r => r.matches[0]?.kind)
  t.same(ids({}), ['uid-owner', 'uid-owner'])
  t.same(ids({ ISTIO_OUTBOUND_METHOD: 'mark' }), ['mark', 'mark'])
  t.same(ids({ ISTIO_OUTBOUND_METHOD: 'cgroup', ISTIO_PROXY_GID: '7' }), ['cgroup', 'cgroup', 'gid-owner', 'gid-owner'])
  t.same(ids({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.9' }), ['uid-owner', 'uid-owner'], 'explicit: by UID')
})

t.test('dns resolv-conf: a family without a nameserver gets no DNS chains; all: no address at all', async t => {
  const [v4, v6] = dnsPlan({ ISTIO_DNS_CAPTURE: 'resolv-conf' }, NS.slice(0, 1))
  t.equal(v4!.chains.length, 4)
  t.same(v6!.chains, ['nat PREROUTING SIDECAR_INBOUND', 'nat OUTPUT SIDECAR_OUTBOUND'])
  for (const p of dnsPlan({ ISTIO_DNS_CAPTURE: 'all' })) {
    t.notOk(
      p.byName('SIDECAR_DNS').some(r => r.matches.some(m => m.kind === 'destination')),
      `${p.family}: any address`,
    )
  }
})

t.test('resolv.conf: nameserver lines, comments, each address once; a bad or missing one is refused naming the line', async t => {
  const text = '# x\nsearch a b\nnameserver 198.18.0.53 # comment\n;nameserver 198.18.0.9\nnameserver  2001:DB8::53\nnameserver 198.18.0.53\n'
  t.same(parseNameservers(text, '/r', 'ISTIO_RESOLV_CONF'), NS)
  t.throws(() => parseNameservers('nameserver fe80::1%eth0\n', '/r', 'ISTIO_RESOLV_CONF'), {
    message:
      'ISTIO_RESOLV_CONF="/r" is not valid: expected a resolv.conf with at least one "nameserver ADDRESS" line (IPv4, or IPv6 without a zone) (line 1 is "nameserver fe80::1%eth0")',
  })
  t.throws(() => parseNameservers('nameserver 10.0.0.0/8\n', '/r', 'X'), { message: /line 1/ })
  t.throws(() => parseNameservers('nameserver\n', '/r', 'X'), { message: /line 1/ })
  t.throws(() => parseNameservers('search x\n', '/r', 'X'), { message: /\(it has none\)$/ })
})

t.test('loadSettings reads resolv.conf only for resolv-conf, from ISTIO_RESOLV_CONF or --resolv-conf', async t => {
  const reads: string[] = []
  const read = async (path: string, variable: string) => {
    reads.push(`${variable} ${path}`)
    return [...NS]
  }
  const none = async () => []
  t.same((await loadSettings({ ISTIO_DNS_CAPTURE: 'all' }, {}, none, read)).nameservers, [])
  t.same((await loadSettings({ ISTIO_DNS_CAPTURE: 'resolv-conf' }, {}, none, read)).nameservers, NS)
  await loadSettings({ ISTIO_DNS_CAPTURE: 'resolv-conf' }, { resolvConf: '/x/resolv.conf' }, none, read)
  t.same(reads, ['ISTIO_RESOLV_CONF /etc/resolv.conf', '--resolv-conf /x/resolv.conf'])
})

t.test('TPROXY: inbound leaves nat for mangle, after the loopback and established exemptions, with the routing beside', async t => {
  const env = { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_CAPTURE_PORT: '15006', ISTIO_INBOUND_EXCLUDE_PORTS: '22' }
  for (const plan of buildPlan(parseSettings({ ...env, ISTIO_EXCLUDE_INTERFACES: 'eth1' }), FAMILIES).families) {
    t.same(
      plan.chains.map(c => [c.name, c.table, c.hook]),
      [
        ['SIDECAR_TPROXY_MARK', 'mangle', 'OUTPUT'],
        ['SIDECAR_TPROXY', 'mangle', 'PREROUTING'],
        ['SIDECAR_OUTBOUND', 'nat', 'OUTPUT'],
      ],
      `${plan.family}: no nat inbound chain`,
    )
    t.same(
      plan.chains[1]!.rules.map(r => [r.purpose, r.target.kind]),
      [
        ['tproxy-loopback', 'return'],
        ['tproxy-established', 'return'],
        ['inbound-exclude-port', 'return'],
        ['inbound-exclude-interface', 'return'],
        ['inbound-capture', 'tproxy'],
      ],
    )
    t.same(plan.chains[1]!.rules.at(-1)!.target, { kind: 'tproxy', port: 15006, mark: 1337 })
    t.same(plan.routing, { priority: 32000, mark: 1337, table: 133 })
  }
  const custom = buildPlan(parseSettings({ ...env, ISTIO_INBOUND_TPROXY_MARK: '0x10', ISTIO_INBOUND_TPROXY_ROUTE_TABLE: '200' }), ['ipv4'])
    .families[0]!
  t.same(custom.routing, { priority: 32000, mark: 16, table: 200 })
  t.same(
    custom.chains[0]!.rules.map(r => r.target),
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
