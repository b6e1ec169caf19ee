// The tables and built-in chains init makes for iptables-nft, marked as ours, and which of them clean deletes: only
// marked ones, only when empty. Pure: nft text in, nft text out.
import t from 'tap'
import { neededBy, renderEmptyCreated, renderMissing } from '../../../../src/backend/iptables/created.js'
import { renderState } from '../../../../src/backend/iptables/render-iptables.js'
import { splitRuleset } from '../../../../src/path/from-nft.js'
import { buildPlan } from '../../../../src/plan/build.js'
import { parseSettings } from '../../../../src/settings/parse.js'

const MARK = 'comment "sidecar-redirect/created"'
const plan = buildPlan(parseSettings({ ISTIO_DNS_CAPTURE: 'all', ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' }), ['ipv4'])
const needed = neededBy('ipv4', renderState(plan.families[0]!))

t.test('what a TPROXY and DNS plan jumps from: raw OUTPUT, mangle both, nat OUTPUT', async t => {
  t.same(
    needed.map(n => `${n.table} ${n.hook}`),
    ['raw OUTPUT', 'mangle OUTPUT', 'mangle PREROUTING', 'nat OUTPUT'],
  )
})

t.test('in a namespace without them, each table and chain is made, marked, as iptables-nft defines it', async t => {
  t.equal(
    renderMissing(needed, []),
    [
      `add table ip raw { ${MARK}; }`,
      `add chain ip raw OUTPUT { type filter hook output priority -300; policy accept; ${MARK}; }`,
      `add table ip mangle { ${MARK}; }`,
      `add chain ip mangle OUTPUT { type route hook output priority -150; policy accept; ${MARK}; }`,
      `add chain ip mangle PREROUTING { type filter hook prerouting priority -150; policy accept; ${MARK}; }`,
      `add table ip nat { ${MARK}; }`,
      `add chain ip nat OUTPUT { type nat hook output priority -100; policy accept; ${MARK}; }`,
      '',
    ].join('\n'),
  )
})

const FOREIGN_NAT =
  'table ip nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tudp dport 53 counter packets 0 bytes 0 return\n\t}\n}\n'

t.test("someone else's table is not made again, nor marked; only the chain it lacks is", async t => {
  t.equal(
    renderMissing(
      needed.filter(n => n.table === 'nat'),
      splitRuleset(FOREIGN_NAT),
    ),
    `add chain ip nat OUTPUT { type nat hook output priority -100; policy accept; ${MARK}; }\n`,
  )
  t.equal(
    renderMissing([{ family: 'ipv4', table: 'nat', hook: 'PREROUTING' }], splitRuleset(FOREIGN_NAT)),
    undefined,
    'nothing missing: nothing to do',
  )
})

t.test('clean deletes a marked chain only when it holds no rule, and a marked table only when nothing else is left', async t => {
  const made = `table ip raw {\n\t${MARK}\n\tchain OUTPUT {\n\t\t${MARK}\n\t\ttype filter hook output priority raw; policy accept;\n\t}\n}\n`
  t.equal(renderEmptyCreated(splitRuleset(made), ['ipv4']), 'delete chain ip raw OUTPUT\ndelete table ip raw\n')
  t.equal(renderEmptyCreated(splitRuleset(made), ['ipv6']), undefined, 'only the families asked about')
  const used = made.replace('policy accept;\n', 'policy accept;\n\t\tudp dport 53 counter packets 0 bytes 0 notrack\n')
  t.equal(renderEmptyCreated(splitRuleset(used), ['ipv4']), undefined, 'a rule someone put there keeps chain and table')
  const inForeign = FOREIGN_NAT.replace(
    '}\n}\n',
    `}\n\n\tchain OUTPUT {\n\t\t${MARK}\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n}\n`,
  )
  t.equal(
    renderEmptyCreated(splitRuleset(inForeign), ['ipv4']),
    'delete chain ip nat OUTPUT\n',
    "our chain goes from someone else's table, which stays",
  )
  const withSet = made.replace('\tchain OUTPUT', '\tset s {\n\t\ttype ipv4_addr\n\t}\n\n\tchain OUTPUT')
  t.equal(renderEmptyCreated(splitRuleset(withSet), ['ipv4']), 'delete chain ip raw OUTPUT\n', 'a set someone added keeps the table')
  t.equal(renderEmptyCreated(splitRuleset(FOREIGN_NAT.replace(/\t\tudp.*\n/, '')), ['ipv4']), undefined, 'an empty table of someone else stays')
})
