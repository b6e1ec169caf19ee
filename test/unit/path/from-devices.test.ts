// The whole-path check on the pod's devices, without a kernel: tc filters and XDP programs as tc and ip print them
// (JSON), nft netdev and inet ingress/egress chains as nft prints them, and which of them count. The kernel suite
// (test/kernel/integration/devices/) proves the rows that matter with traffic on every backend.
import t from 'tap'
import { findEscapes } from '../../../src/path/analyze.js'
import { classIds, filterPlaces, readTcFilter, seenTcTables, seenXdpTables, type TcFilter } from '../../../src/path/from-devices.js'
import { seenNftTables, splitRuleset } from '../../../src/path/from-nft.js'
import type { SeenTable } from '../../../src/path/model.js'
import { buildPlan } from '../../../src/plan/build.js'
import { parseSettings } from '../../../src/settings/parse.js'

const planFor = (env: Record<string, string> = {}, family: 0 | 1 = 0) => buildPlan(parseSettings(env), ['ipv4', 'ipv6']).families[family]!

const u32 = (actions: object[], protocol = 'ip'): TcFilter =>
  ({ protocol, pref: 49152, kind: 'u32', options: { fh: '800::800', actions } }) as TcFilter

t.test('tc filters: what their actions do', async t => {
  const rows: [string, TcFilter, string[], string[]?][] = [
    ['mirred redirect', u32([{ kind: 'mirred', mirred_action: 'redirect', to_dev: 'lo' }]), ['forward']],
    ['mirred mirror', u32([{ kind: 'mirred', mirred_action: 'mirror', to_dev: 'eth1' }]), ['duplicate']],
    ['pedit', u32([{ kind: 'pedit' }, { kind: 'csum' }]), ['rewrite']],
    ['stateless nat', u32([{ kind: 'nat' }]), ['rewrite']],
    ['pass, drop and a mark', u32([{ kind: 'gact' }, { kind: 'skbedit' }, { kind: 'police' }]), []],
    [
      'an action we do not know',
      u32([{ kind: 'frobnicate' }]),
      ['accept', 'bind', 'notrack', 'zone', 'mark', 'rewrite', 'tproxy', 'forward', 'duplicate'],
    ],
    ['an eBPF action', u32([{ kind: 'bpf', prog: { id: 7, tag: '59f4a931744dcdc6' } }]), ['opaque'], ['59f4a931744dcdc6']],
    ['a classic BPF action (a verdict, no helpers)', u32([{ kind: 'bpf' }]), []],
    [
      'an eBPF classifier in direct-action mode',
      { protocol: 'all', pref: 1, kind: 'bpf', options: { 'direct-action': true, prog: { id: 9, tag: '0123456789abcdef' } } },
      ['opaque'],
      ['0123456789abcdef'],
    ],
    ['a classic BPF classifier (it only picks packets)', { protocol: 'all', pref: 1, kind: 'bpf', options: { bytecode: {} } }, []],
    ['a classifier that only picks a class', { protocol: 'all', pref: 1, kind: 'u32', options: { fh: '800::800' } }, []],
  ]
  for (const [name, filter, effects, programs] of rows) {
    const rule = readTcFilter(filter)
    t.same(rule?.effects, effects, name)
    t.same(rule?.programs, programs, `${name}: programs`)
  }
  t.equal(readTcFilter({ protocol: 'ip', pref: 1, kind: 'u32' }), undefined, 'a header entry is no rule')
  t.same(readTcFilter(u32([], 'ip'))?.conditions, { protocol: 'any', family: 'ipv4' })
  t.same(readTcFilter(u32([], 'ipv6'))?.conditions, { protocol: 'any', family: 'ipv6' })
  t.same(readTcFilter(u32([], 'all'))?.conditions, { protocol: 'any' })
  t.same(readTcFilter(u32([], 'arp'))?.conditions, { protocol: 'other' })
  t.match(
    readTcFilter(u32([{ kind: 'mirred', mirred_action: 'redirect', to_dev: 'lo' }]))?.text,
    'protocol ip pref 49152 u32 fh 800::800 action mirred redirect dev lo',
  )
})

t.test('tc qdiscs: where filters can hang, and the classes of a classful qdisc', async t => {
  t.same(
    filterPlaces([
      { kind: 'noqueue', handle: '0:', dev: 'lo' },
      { kind: 'clsact', handle: 'ffff:', dev: 'eth0', parent: 'ffff:fff1' },
      { kind: 'ingress', handle: 'ffff:', dev: 'eth1', parent: 'ffff:fff1' },
      { kind: 'htb', handle: '1:', dev: 'eth2' },
    ]),
    [
      { dev: 'eth0', parent: 'ingress', hook: 'ingress' },
      { dev: 'eth0', parent: 'egress', hook: 'egress' },
      { dev: 'eth1', parent: 'ingress', hook: 'ingress' },
      { dev: 'eth2', parent: '1:', hook: 'egress' },
    ],
  )
  t.same(classIds('class htb 1:1 root prio 0 rate 1Mbit ceil 1Mbit burst 1600b cburst 1600b \nclass htb 1:10 parent 1:1 prio 0 rate 8bit\n'), [
    '1:1',
    '1:10',
  ])
})

t.test('XDP programs: one rule per program that cannot be judged', async t => {
  const tables = seenXdpTables([
    { ifname: 'lo' },
    { ifname: 'eth0', xdp: { prog: { id: 109, tag: '614b434cd8324ecc' }, attached: [{ prog: { id: 109, tag: '614b434cd8324ecc' } }] } },
  ])
  t.equal(tables.length, 1)
  t.same(
    [...tables[0]!.chains.values()][0]?.rules.map(r => [r.text, r.programs]),
    [['xdp program 614b434cd8324ecc', ['614b434cd8324ecc']]],
  )
})

const ruleset = (text: string): SeenTable[] => seenNftTables(splitRuleset(text))

const netdev = (hook: 'ingress' | 'egress', device: string, rule: string): SeenTable[] =>
  ruleset(
    `table netdev foreign {\n\tchain c {\n\t\ttype filter hook ${hook} device "${device}" priority filter; policy accept;\n\t\t${rule}\n\t}\n}\n`,
  )

t.test('nft: netdev and inet ingress chains are read with their devices', async t => {
  const tables = ruleset(
    'table netdev t {\n\tchain m {\n\t\ttype filter hook ingress devices = { eth0, lo } priority -500; policy accept;\n\t\tip daddr 198.18.0.9 fwd to "lo"\n\t\tdup to "eth1"\n\t\t@th,16,16 set 0x1234\n\t}\n}\ntable inet i {\n\tchain c {\n\t\ttype filter hook ingress device "eth0" priority filter - 10; policy accept;\n\t}\n}\n',
  )
  const m = tables[0]!.chains.get('m')!
  t.same([m.hook, m.priority, m.devices], ['ingress', -500, ['eth0', 'lo']])
  t.same(
    m.rules.map(r => r.effects),
    [['forward'], ['duplicate'], ['rewrite']],
  )
  t.same(m.rules[0]?.conditions.family, 'ipv4', 'an ip match limits a netdev rule to IPv4')
  const c = tables[1]!.chains.get('c')!
  t.same([c.hook, c.priority, c.devices], ['ingress', -10, ['eth0']])
})

const TC_LO_REDIRECT: SeenTable[] = seenTcTables([
  { dev: 'eth0', parent: 'ingress', hook: 'ingress', filters: [u32([{ kind: 'mirred', mirred_action: 'redirect', to_dev: 'lo' }])] },
])
const TC_BPF: SeenTable[] = seenTcTables([
  {
    dev: 'eth0',
    parent: 'ingress',
    hook: 'ingress',
    filters: [{ protocol: 'all', pref: 1, kind: 'bpf', options: { prog: { id: 3, tag: '0123456789abcdef' } } }],
  },
])

// Each row: the foreign hook, the settings, and whether it is drift (and why) in IPv4.
const ROWS: { name: string; env?: Record<string, string>; tables: SeenTable[]; escapes: RegExp | false; family?: 0 | 1 }[] = [
  {
    name: 'a netdev ingress port rewrite on eth0 of a port we capture',
    tables: netdev('ingress', 'eth0', 'tcp dport 8080 tcp dport set 15021'),
    escapes: /rewrite inbound TCP we capture as it arrives on eth0, before our rules judge it/,
  },
  {
    name: 'the same rewrite seen from IPv6 (a netdev table sees both families)',
    tables: netdev('ingress', 'eth0', 'tcp dport 8080 tcp dport set 15021'),
    escapes: /arrives on eth0/,
    family: 1,
  },
  {
    name: 'an ingress rewrite of an excluded inbound port only',
    env: { ISTIO_INBOUND_EXCLUDE_PORTS: '15021' },
    tables: netdev('ingress', 'eth0', 'tcp dport 15021 tcp dport set 8080'),
    escapes: false,
  },
  {
    name: 'an ingress rewrite on an excluded interface',
    env: { ISTIO_EXCLUDE_INTERFACES: 'eth1' },
    tables: netdev('ingress', 'eth1', 'tcp dport 8080 tcp dport set 15021'),
    escapes: false,
  },
  { name: 'an ingress rewrite of UDP only', tables: netdev('ingress', 'eth0', 'udp dport 53 udp dport set 5353'), escapes: false },
  {
    name: 'an IPv6-only ingress rewrite, seen from IPv4',
    tables: netdev('ingress', 'eth0', 'ip6 daddr 2001:db8::1 tcp dport set 15021'),
    escapes: false,
  },
  {
    name: 'an ingress rewrite with no inbound capture',
    env: { ISTIO_INBOUND_PORTS: '' },
    tables: netdev('ingress', 'eth0', 'tcp dport set 15021'),
    escapes: false,
  },
  {
    name: 'a netdev egress rewrite on eth0 (what we let go, sent where we capture)',
    tables: netdev('egress', 'eth0', 'tcp dport 15021 tcp dport set 9090'),
    escapes: /TCP leaving by eth0 after our rules let it go/,
  },
  {
    name: 'an egress rewrite with no outbound capture',
    env: { ISTIO_OUTBOUND_INCLUDE_CIDRS: '' },
    tables: netdev('egress', 'eth0', 'tcp dport set 9090'),
    escapes: false,
  },
  {
    name: 'a rewrite on lo at ingress',
    tables: netdev('ingress', 'lo', 'tcp dport 5001 tcp dport set 8080'),
    escapes: /on lo, which carries every connection we redirect/,
  },
  { name: 'a rewrite on lo at egress', tables: netdev('egress', 'lo', 'tcp dport set 8080'), escapes: /on lo.*after netfilter/ },
  { name: 'a drop and a counter at ingress', tables: netdev('ingress', 'eth0', 'tcp dport 22 counter drop'), escapes: false },
  { name: 'a tc redirect into lo at ingress', tables: TC_LO_REDIRECT, escapes: /redirect inbound TCP we capture as it arrives on eth0/ },
  { name: 'a tc BPF program', tables: TC_BPF, escapes: /runs a BPF program \(0123456789abcdef\) on eth0 at ingress: .* cannot be judged/ },
  { name: 'the same program, accepted by its tag', env: { ISTIO_ACCEPT_BPF_PROGRAMS: '0123456789ABCDEF' }, tables: TC_BPF, escapes: false },
  { name: 'the same program, every program accepted', env: { ISTIO_ACCEPT_BPF_PROGRAMS: '*' }, tables: TC_BPF, escapes: false },
  {
    name: 'another program accepted: this one still counts',
    env: { ISTIO_ACCEPT_BPF_PROGRAMS: 'fedcba9876543210' },
    tables: TC_BPF,
    escapes: /cannot be judged/,
  },
  {
    name: 'an nft dup at output before our nat',
    tables: ruleset('table ip d {\n\tchain c {\n\t\ttype filter hook output priority -200; policy accept;\n\t\tdup to 198.18.0.9\n\t}\n}\n'),
    escapes: /send a copy of TCP we capture elsewhere before our nat/,
  },
]

for (const row of ROWS) {
  t.test(`devices: ${row.name}`, async t => {
    const settings = parseSettings(row.env ?? {})
    const accepted = settings.acceptBpfPrograms === 'all' ? 'all' : new Set(settings.acceptBpfPrograms)
    const found = findEscapes(planFor(row.env, row.family ?? 0), row.tables, undefined, accepted)
    if (row.escapes === false) return t.same(found, [], 'not an escape')
    t.equal(found.length, 1, 'one finding', { found })
    t.match(found[0]?.why, row.escapes)
    t.equal(found[0]?.fixable, false, 'only changing the foreign rule would fix it')
  })
}
