// The whole-path check on printed rule text, without a kernel: which foreign rules count, and why. The kernel
// suite (test/kernel/integration/whole-path/) proves the same rows with traffic.
import t from 'tap'
import { findEscapes } from '../../../src/path/analyze.js'
import { seenTables } from '../../../src/path/from-iptables.js'
import { seenNftTables, splitRuleset } from '../../../src/path/from-nft.js'
import { buildPlan } from '../../../src/plan/build.js'
import { misplacedJumps, ownRules } from '../../../src/backend/iptables/apply.js'
import { JUMPS as BY_CHAIN } from '../../../src/backend/iptables/render-iptables.js'
import { parseSettings } from '../../../src/settings/parse.js'

const OWN = ownRules('iptables-nft', 'ipv4')
const JUMPS = { PREROUTING: BY_CHAIN.SIDECAR_INBOUND, OUTPUT: BY_CHAIN.SIDECAR_OUTBOUND }

const save = (table: string, lines: readonly string[], chains: readonly string[] = []): string =>
  [`*${table}`, ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...chains.map(c => `:${c} - [0:0]`), ...lines, 'COMMIT', ''].join('\n')

const planFor = (env: Record<string, string> = {}) => buildPlan(parseSettings(env), ['ipv4', 'ipv6']).families[0]!

// Each row: where the foreign rule sits, and whether it lets captured TCP escape (a finding) or provably cannot.
const ROWS: { name: string; env?: Record<string, string>; text: string; tool?: string; table?: 'nat' | 'raw' | 'mangle'; escapes: RegExp | false }[] =
  [
    {
      name: 'a RETURN ahead of our jump',
      text: save('nat', ['-A OUTPUT -d 198.18.0.2/32 -p tcp -j RETURN', JUMPS.OUTPUT]),
      escapes: /end OUTPUT .*before our jump \(rule 2\)/,
    },
    {
      name: 'an ACCEPT for a port ahead of our inbound jump',
      text: save('nat', ['-A PREROUTING -p tcp -m tcp --dport 8080 -j ACCEPT', JUMPS.PREROUTING]),
      escapes: /end PREROUTING/,
    },
    {
      name: 'a jump ahead to a chain that accepts',
      text: save('nat', ['-A OUTPUT -j FOREIGN', JUMPS.OUTPUT, '-A FOREIGN -p tcp -j ACCEPT'], ['FOREIGN']),
      escapes: /end OUTPUT/,
    },
    {
      name: 'a jump ahead to a chain that only returns',
      text: save('nat', ['-A OUTPUT -j FOREIGN', JUMPS.OUTPUT, '-A FOREIGN -p tcp -j RETURN'], ['FOREIGN']),
      escapes: false,
    },
    {
      name: 'a goto ahead to a chain that returns (ends the built-in chain)',
      text: save('nat', ['-A OUTPUT -g FOREIGN', JUMPS.OUTPUT, '-A FOREIGN -j RETURN'], ['FOREIGN']),
      escapes: /end OUTPUT/,
    },
    {
      name: 'UDP ahead of our jump',
      text: save('nat', ['-A OUTPUT -p udp -j RETURN', '-A OUTPUT -p udp -m udp --dport 53 -j DNAT --to-destination 198.18.0.9:53', JUMPS.OUTPUT]),
      escapes: false,
    },
    { name: 'a LOG ahead of our jump', text: save('nat', ['-A OUTPUT -p tcp -j LOG', JUMPS.OUTPUT]), escapes: false },
    {
      name: 'the proxy UID returned ahead of our jump',
      text: save('nat', ['-A OUTPUT -p tcp -m owner --uid-owner 1337 -j RETURN', JUMPS.OUTPUT]),
      escapes: false,
    },
    {
      name: 'another UID returned ahead of our jump',
      text: save('nat', ['-A OUTPUT -p tcp -m owner --uid-owner 1000 -j RETURN', JUMPS.OUTPUT]),
      escapes: /end OUTPUT/,
    },
    {
      name: 'a destination we exclude anyway',
      env: { ISTIO_OUTBOUND_EXCLUDE_CIDRS: '198.18.9.0/24' },
      text: save('nat', ['-A OUTPUT -d 198.18.9.9/32 -p tcp -j RETURN', JUMPS.OUTPUT]),
      escapes: false,
    },
    {
      name: 'a destination outside the included CIDRs',
      env: { ISTIO_OUTBOUND_INCLUDE_CIDRS: '198.18.0.0/24' },
      text: save('nat', ['-A OUTPUT -d 198.19.0.1/32 -p tcp -j RETURN', JUMPS.OUTPUT]),
      escapes: false,
    },
    {
      name: 'a destination inside the included CIDRs',
      env: { ISTIO_OUTBOUND_INCLUDE_CIDRS: '198.18.0.0/24' },
      text: save('nat', ['-A OUTPUT -d 198.18.0.7/32 -p tcp -j RETURN', JUMPS.OUTPUT]),
      escapes: /end OUTPUT/,
    },
    {
      name: 'a port we exclude anyway',
      env: { ISTIO_OUTBOUND_EXCLUDE_PORTS: '9000-9100' },
      text: save('nat', ['-A OUTPUT -p tcp -m tcp --dport 9050 -j RETURN', JUMPS.OUTPUT]),
      escapes: false,
    },
    {
      name: 'an inbound port we do not capture',
      env: { ISTIO_INBOUND_PORTS: '8080' },
      text: save('nat', ['-A PREROUTING -p tcp -m tcp --dport 22 -j ACCEPT', JUMPS.PREROUTING]),
      escapes: false,
    },
    {
      name: 'a negated match is not trusted to narrow',
      text: save('nat', ['-A OUTPUT -p tcp -m tcp ! --dport 9999 -j RETURN', JUMPS.OUTPUT]),
      escapes: /end OUTPUT/,
    },
    {
      name: 'an interface we exclude anyway, all of its traffic (scope all)',
      env: { ISTIO_EXCLUDE_INTERFACES: 'side0', ISTIO_EXCLUDE_INTERFACES_SCOPE: 'all' },
      text: save('nat', ['-A OUTPUT -o side0 -p tcp -j RETURN', JUMPS.OUTPUT]),
      escapes: false,
    },
    {
      // By its routes, we exempt only what they cover; the rest leaving by it is ours to capture.
      name: 'the same RETURN with scope routes: it lets go what we capture leaving by side0 beyond its routes',
      env: { ISTIO_EXCLUDE_INTERFACES: 'side0' },
      text: save('nat', ['-A OUTPUT -o side0 -p tcp -j RETURN', JUMPS.OUTPUT]),
      escapes: /end OUTPUT/,
    },
    {
      name: 'a DNAT in the other variant on an inbound interface we exclude',
      env: { ISTIO_EXCLUDE_INTERFACES: 'side0' },
      tool: 'iptables-legacy',
      text: save('nat', ['-A PREROUTING -i side0 -p tcp -j DNAT --to-destination 198.18.0.2:9']),
      escapes: false,
    },
    {
      name: 'an interface other than the one we exclude',
      env: { ISTIO_EXCLUDE_INTERFACES: 'side0' },
      text: save('nat', ['-A PREROUTING -i side1 -p tcp -j ACCEPT', JUMPS.PREROUTING]),
      escapes: /end PREROUTING/,
    },
    {
      name: 'an interface wildcard is not trusted to narrow',
      env: { ISTIO_EXCLUDE_INTERFACES: 'side0' },
      text: save('nat', ['-A OUTPUT -o side+ -p tcp -j RETURN', JUMPS.OUTPUT]),
      escapes: /end OUTPUT/,
    },
    { name: 'a rule after our jump', text: save('nat', [JUMPS.OUTPUT, '-A OUTPUT -p tcp -j RETURN']), escapes: false },
    { name: 'an unknown target ahead', text: save('nat', ['-A OUTPUT -p tcp -j FUTURE --x', JUMPS.OUTPUT]), escapes: /end OUTPUT/ },
    {
      name: 'a DNAT in the other variant',
      tool: 'iptables-legacy',
      text: save('nat', ['-A OUTPUT -d 198.18.0.2/32 -p tcp -j DNAT --to-destination 198.18.0.2:9']),
      escapes: /bind .* alongside ours/,
    },
    {
      name: 'a RETURN in the other variant (the next nat chain still runs)',
      tool: 'iptables-legacy',
      text: save('nat', ['-A OUTPUT -p tcp -j RETURN']),
      escapes: false,
    },
    { name: 'a raw NOTRACK', text: save('raw', ['-A OUTPUT -d 198.18.0.2/32 -p tcp -j CT --notrack']), table: 'raw', escapes: /connection tracking/ },
    {
      name: 'a raw NOTRACK in legacy form',
      tool: 'iptables-legacy',
      text: save('raw', ['-A PREROUTING -p tcp -j NOTRACK']),
      table: 'raw',
      escapes: /connection tracking/,
    },
    { name: 'a raw zone change', text: save('raw', ['-A OUTPUT -p tcp -j CT --zone 3']), table: 'raw', escapes: /conntrack zone/ },
    { name: 'a raw NOTRACK for UDP only', text: save('raw', ['-A OUTPUT -p udp -j CT --notrack']), table: 'raw', escapes: false },
    {
      name: 'a mangle MARK (method uid)',
      text: save('mangle', ['-A OUTPUT -p tcp -j MARK --set-xmark 0x1/0xffffffff']),
      table: 'mangle',
      escapes: false,
    },
    {
      name: 'a mangle MARK (method mark)',
      env: { ISTIO_OUTBOUND_METHOD: 'mark' },
      text: save('mangle', ['-A OUTPUT -p tcp -j MARK --set-xmark 0x1/0xffffffff']),
      table: 'mangle',
      escapes: /set the mark/,
    },
    {
      name: 'a mangle TPROXY for inbound',
      text: save('mangle', ['-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1']),
      table: 'mangle',
      escapes: /another socket/,
    },
  ]

for (const row of ROWS) {
  t.test(`iptables text: ${row.name}`, async t => {
    const tool = row.tool ?? 'iptables-nft'
    const found = findEscapes(planFor(row.env), seenTables(row.text, 'ipv4', tool), OWN)
    if (row.escapes === false) t.same(found, [], 'not an escape')
    else {
      t.equal(found.length, 1, 'one finding', { found })
      t.match(found[0]?.why, row.escapes)
      t.match(found[0]?.where, new RegExp(`^${tool} ipv4 ${row.table ?? 'nat'} `), 'names the variant, table and chain')
      t.equal(found[0]?.fixable, tool === 'iptables-nft' && (row.table ?? 'nat') === 'nat', 'only a rule ahead of our own jump is ours to fix')
    }
  })
}

const RULESET = `table inet foreign {
	comment "not ours"
	set s {
		type ipv4_addr
		elements = { 198.18.0.1, 198.18.0.2,
			     198.18.0.3 }
	}

	chain early {
		type nat hook output priority -150; policy accept;
		tcp dport 80 ip daddr 198.18.0.4 counter packets 3 bytes 180 dnat ip to 198.18.0.5
		udp dport 53 dnat ip to 198.18.0.5:53
		tcp dport 443 accept comment "dnat redirect notrack are only words here"
	}

	chain late {
		type nat hook output priority srcnat; policy accept;
		dnat ip to 198.18.0.5
	}

	chain raw {
		type filter hook prerouting priority raw - 5; policy accept;
		meta l4proto tcp notrack
		meta l4proto udp notrack
		ip6 daddr 2001:db8::9 tcp dport 1 ct zone set 2
	}

	chain mangle {
		type route hook output priority mangle; policy accept;
		meta mark set 0x1
		jump sub
	}

	chain sub {
		ip daddr set 198.18.0.9
	}
}
`

t.test('nft text: each base chain by hook and priority', async t => {
  const tables = seenNftTables(splitRuleset(RULESET))
  t.same(
    tables.map(x => x.where),
    ['nft inet foreign'],
  )
  const chains = tables[0]!.chains
  t.same(
    [...chains.values()].map(c => [c.name, c.hook, c.priority, c.type]),
    [
      ['early', 'output', -150, 'nat'],
      ['late', 'output', 100, 'nat'],
      ['raw', 'prerouting', -305, 'filter'],
      ['mangle', 'output', -150, 'route'],
      ['sub', undefined, undefined, undefined],
    ],
  )
  const v4 = findEscapes(planFor(), tables)
  t.same(
    v4.map(f => f.where),
    ['nft inet foreign raw rule 1', 'nft inet foreign early rule 1', 'nft inet foreign mangle rule 2'],
    'IPv4: the early DNAT, the TCP notrack and the rewrite behind a jump; not UDP, the late DNAT, a comment, or a mark under uid',
  )
  const v6 = findEscapes(buildPlan(parseSettings({}), ['ipv4', 'ipv6']).families[1]!, tables)
  t.same(
    v6.map(f => f.where),
    ['nft inet foreign raw rule 1', 'nft inet foreign raw rule 3'],
    'IPv6: an `ip daddr` rule is IPv4 only; the zone change counts',
  )
  const marked = findEscapes(planFor({ ISTIO_OUTBOUND_METHOD: 'mark' }), tables)
  t.ok(
    marked.some(f => f.where === 'nft inet foreign mangle rule 1'),
    'with the mark method a mark set before nat counts',
  )
})

t.test('nft text: a table comment and the exact table text are kept', async t => {
  const [table] = splitRuleset(RULESET)
  t.equal(table?.comment, 'not ours')
  t.equal(table?.text, RULESET)
})

t.test('nft text: a rule on an interface we exclude cannot affect capture; a wildcard or another name can', async t => {
  const ruleset = (match: string): string =>
    `table ip foreign {\n\tchain early {\n\t\ttype nat hook prerouting priority -150; policy accept;\n\t\t${match} tcp dport 80 dnat to 198.18.0.5\n\t}\n}\n`
  const plan = planFor({ ISTIO_EXCLUDE_INTERFACES: 'side0' })
  t.same(findEscapes(plan, seenNftTables(splitRuleset(ruleset('iifname "side0"')))), [])
  for (const other of ['iifname "side*"', 'iifname "side1"', 'iifname { "side0", "side1" }']) {
    t.equal(findEscapes(plan, seenNftTables(splitRuleset(ruleset(other)))).length, 1, other)
  }
})

t.test('our own jumps in the tables we program are ours: a zone chain in raw, a DNS chain ahead of the capture jump', async t => {
  const zoneJump = BY_CHAIN.SIDECAR_DNS_ZONE_OUT
  const zoneRule = '-A SIDECAR_DNS_ZONE_OUT -p tcp -m tcp --sport 15053 -m comment --comment "sidecar-redirect/dns-zone" -j CT --zone 2'
  const raw = save('raw', [zoneJump, zoneRule], ['SIDECAR_DNS_ZONE_OUT'])
  const dnsRule = '-A SIDECAR_DNS -p tcp -m tcp --dport 53 -m comment --comment "sidecar-redirect/dns" -j REDIRECT --to-ports 15053'
  const nat = save('nat', [BY_CHAIN.SIDECAR_DNS, JUMPS.OUTPUT, dnsRule], ['SIDECAR_DNS'])
  t.same(findEscapes(planFor(), seenTables(raw + nat, 'ipv4', 'iptables-nft'), OWN), [], 'ours, in our tables')
  const leftover = findEscapes(planFor(), seenTables(raw, 'ipv4', 'iptables-legacy'), OWN)
  t.equal(leftover.length, 1, 'the same rules in the other variant are a leftover, and count')
  t.match(leftover[0]?.why, /another conntrack zone/)
  const foreign = save('raw', ['-A OUTPUT -p tcp -j CT --zone 7', zoneJump, zoneRule], ['SIDECAR_DNS_ZONE_OUT'])
  const found = findEscapes(planFor(), seenTables(foreign, 'ipv4', 'iptables-nft'), OWN)
  t.same(
    found.map(f => [f.where, f.rule]),
    [['iptables-nft ipv4 raw OUTPUT rule 1', '-A OUTPUT -p tcp -j CT --zone 7']],
    'a foreign zone rule beside ours still counts',
  )
  const between = save('nat', [BY_CHAIN.SIDECAR_DNS, '-A OUTPUT -p tcp -j ACCEPT', JUMPS.OUTPUT, dnsRule], ['SIDECAR_DNS'])
  const ahead = findEscapes(planFor(), seenTables(between, 'ipv4', 'iptables-nft'), OWN)
  t.same(
    ahead.map(f => [f.where, f.fixable]),
    [['iptables-nft ipv4 nat OUTPUT rule 2', true]],
    'a foreign rule between our jumps is ahead of the capture, at its own position',
  )
})

// TPROXY inbound: our capture is mangle PREROUTING's jump to SIDECAR_TPROXY (-150), not nat's REDIRECT.
const TPROXY_ENV = { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' }
const TPROXY_JUMP = BY_CHAIN.SIDECAR_TPROXY
const TPROXY_ROWS: { name: string; text: string; tool?: string; escapes: RegExp | false; fixable?: boolean }[] = [
  {
    name: 'an ACCEPT ahead of our TPROXY jump',
    text: save('mangle', ['-A PREROUTING -p tcp -j ACCEPT', TPROXY_JUMP]),
    escapes: /end PREROUTING for TCP we capture before our jump \(rule 2\)/,
    fixable: true,
  },
  {
    name: 'a mark-and-accept chain jumped to ahead of our TPROXY jump',
    text: save(
      'mangle',
      ['-A PREROUTING -j FOREIGN', TPROXY_JUMP, '-A FOREIGN -p tcp -j MARK --set-xmark 0x7/0xffffffff', '-A FOREIGN -j ACCEPT'],
      ['FOREIGN'],
    ),
    escapes: /end PREROUTING/,
    fixable: true,
  },
  {
    name: 'a foreign TPROXY ahead of our TPROXY jump',
    text: save('mangle', ['-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1', TPROXY_JUMP]),
    escapes: /end PREROUTING/,
    fixable: true,
  },
  { name: 'a RETURN behind our TPROXY jump', text: save('mangle', [TPROXY_JUMP, '-A PREROUTING -p tcp -j RETURN']), escapes: false },
  {
    name: 'a DROP or a MARK ahead of our TPROXY jump',
    text: save('mangle', ['-A PREROUTING -p tcp -j DROP', '-A PREROUTING -j MARK --set-xmark 0x1/0x1', TPROXY_JUMP]),
    escapes: false,
  },
  {
    name: 'an ACCEPT in the other variant’s mangle',
    tool: 'iptables-legacy',
    text: save('mangle', ['-A PREROUTING -p tcp -j ACCEPT']),
    escapes: false,
  },
  {
    name: 'a TPROXY in the other variant’s mangle',
    tool: 'iptables-legacy',
    text: save('mangle', ['-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1']),
    escapes: /another socket at priority -150, alongside our TPROXY/,
    fixable: false,
  },
  {
    name: 'a nat DNAT ahead of where REDIRECT would be',
    text: save('nat', ['-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.9:1']),
    escapes: false,
  },
  {
    name: 'a raw NOTRACK or zone change',
    text: save('raw', ['-A PREROUTING -p tcp -j CT --notrack', '-A PREROUTING -p tcp -j CT --zone 3']),
    escapes: false,
  },
  {
    // Our exemption is lo's connections sent here; a packet moved onto lo from outside is new there, and diverted.
    name: 'an ACCEPT of everything on lo ahead of our jump: more than the loopback we exempt',
    text: save('mangle', ['-A PREROUTING -i lo -p tcp -j ACCEPT', TPROXY_JUMP]),
    escapes: /it can end PREROUTING/,
    fixable: true,
  },
]

for (const row of TPROXY_ROWS) {
  t.test(`TPROXY mode, iptables text: ${row.name}`, async t => {
    const found = findEscapes(planFor(TPROXY_ENV), seenTables(row.text, 'ipv4', row.tool ?? 'iptables-nft'), OWN)
    if (row.escapes === false) return t.same(found, [], 'not an escape')
    t.equal(found.length, 1, 'one finding', { found })
    t.match(found[0]?.why, row.escapes)
    t.equal(found[0]?.fixable, row.fixable, row.fixable ? 'init moves our jump first' : 'only changing the foreign rule would fix it')
    t.equal(found[0]?.hook, 'prerouting')
  })
}

t.test('TPROXY mode: init moves the TPROXY jump, and REDIRECT mode moves the nat one', async t => {
  const backend = { name: 'iptables-nft' } as Parameters<typeof misplacedJumps>[0]
  const ahead = save('mangle', ['-A PREROUTING -p tcp -j ACCEPT', TPROXY_JUMP]) + save('nat', ['-A PREROUTING -p tcp -j ACCEPT', JUMPS.PREROUTING])
  t.same(misplacedJumps(backend, planFor(TPROXY_ENV), ahead), [TPROXY_JUMP])
  t.same(misplacedJumps(backend, planFor(), ahead), [JUMPS.PREROUTING])
})

t.test('TPROXY mode, nft text: a foreign base chain at prerouting, by priority and what it does', async t => {
  const chain = (priority: string, rule: string): string =>
    `table inet foreign {\n\tchain c {\n\t\ttype filter hook prerouting priority ${priority}; policy accept;\n\t\t${rule}\n\t}\n}\n`
  const cases: [string, string, RegExp | false][] = [
    ['-200', 'tcp dport 8080 accept', false],
    ['-200', 'tcp dport 8080 drop', false],
    ['-200', 'tcp dport 8080 notrack', false],
    // Ours runs later and assigns the socket again.
    ['-200', 'tcp dport 8080 tproxy ip to :9 meta mark set 0x1 accept', false],
    ['mangle', 'tcp dport 8080 tproxy ip to :9 meta mark set 0x1 accept', /another socket at priority -150, alongside our TPROXY \(-150\)/],
    ['-140', 'tcp dport 8080 tproxy ip to :9 meta mark set 0x1 accept', /another socket at priority -140, after our TPROXY/],
    ['-200', 'tcp dport 8080 tcp dport set 9', /rewrite the destination of inbound TCP we capture before our TPROXY \(priority -200\)/],
    ['-140', 'tcp dport 8080 tcp dport set 9', false],
  ]
  for (const [priority, rule, escapes] of cases) {
    const found = findEscapes(planFor(TPROXY_ENV), seenNftTables(splitRuleset(chain(priority, rule))))
    if (escapes === false) t.same(found, [], `priority ${priority}: ${rule}: not an escape`)
    else t.match(found, [{ where: 'nft inet foreign c rule 1', why: escapes, fixable: false }], `priority ${priority}: ${rule}`)
  }
  const nat =
    'table ip foreign {\n\tchain n {\n\t\ttype nat hook prerouting priority -150; policy accept;\n\t\ttcp dport 8080 dnat to 198.18.0.9\n\t}\n}\n'
  t.same(findEscapes(planFor(TPROXY_ENV), seenNftTables(splitRuleset(nat))), [], 'a nat binding after TPROXY chose the socket is not an escape')
  t.equal(findEscapes(planFor(), seenNftTables(splitRuleset(nat))).length, 1, 'while in REDIRECT mode it is')
})
