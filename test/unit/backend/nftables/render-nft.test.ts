// The transaction a re-apply sends: our table changed in place (its base chains never unregistered), or replaced
// whole where only that gives the planned table exactly. Tables are written here as `nft list table` prints them.
import t from 'tap'
import { renderNftApply, renderNftTable, renderNftTransaction, renderNftUpdate } from '../../../../src/backend/nftables/render-nft.js'
import { buildPlan } from '../../../../src/plan/build.js'
import { parseSettings } from '../../../../src/settings/parse.js'

const explicit = (services: string): string =>
  renderNftTable(buildPlan(parseSettings({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: services }), ['ipv4', 'ipv6']))
const A = explicit('198.18.0.2:9090,198.18.200.0/24,[2001:db8::2]:9090')
const B = explicit('198.18.0.2:9090,198.18.201.0/24:443,[2001:db8::2]:9090')
const FLUSH = 'flush table inet sidecar_redirect\n'
const flushSets = ['services4', 'services4_ports', 'services6', 'services6_ports'].map(s => `flush set inet sidecar_redirect ${s}\n`).join('')

t.test('a changed service list: every rule and element written again, nothing deleted or re-registered', async t => {
  t.equal(renderNftUpdate(B, A), `${FLUSH}${flushSets}${B}`)
  t.equal(renderNftApply(A, B), `${FLUSH}${flushSets}${A}`)
  t.notMatch(renderNftUpdate(B, A), /delete/)
  // nft wraps a long element list over lines: the continuation lines are elements, not the set's definition.
  const wrapped = B.replace('198.18.0.2 . 9090, 198.18.201.0/24 . 443 }', '198.18.0.2 . 9090,\n\t\t\t     198.18.201.0/24 . 443 }')
  t.not(wrapped, B)
  t.equal(renderNftUpdate(A, wrapped), `${FLUSH}${flushSets}${A}`)
})

t.test('first apply and clean replace the table whole, as before', async t => {
  t.equal(renderNftApply(A, undefined), renderNftTransaction(A))
  t.match(renderNftTransaction(A), /^table inet sidecar_redirect \{\}\ndelete table inet sidecar_redirect\ntable inet sidecar_redirect \{\n/)
})

t.test('sets and chains the plan no longer has are deleted, after the flush that drops the rules using them', async t => {
  const plain = renderNftTable(buildPlan(parseSettings({}), ['ipv4', 'ipv6']))
  const sets = ['services4', 'services4_ports', 'services6', 'services6_ports'].map(s => `delete set inet sidecar_redirect ${s}\n`).join('')
  t.equal(renderNftUpdate(plain, A), `${FLUSH}${sets}${plain}`)
  // Sets added: nft lists them before every chain, so they may come new.
  t.equal(renderNftUpdate(A, plain), `${FLUSH}${A}`)
  const extra = A.replace('\n}\n', '\n\n\tchain stray {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n')
  t.equal(renderNftUpdate(A, extra), `${FLUSH}${flushSets}delete chain inet sidecar_redirect stray\n${A}`)
})

// A small table of two chains, written as nft lists it.
const table = (chains: readonly string[], own = '\tcomment "sidecar-redirect/table"'): string =>
  `table inet sidecar_redirect {\n${own}\n${chains.map(c => `\tchain ${c}`).join('\n\n')}\n}\n`
const output = (priority = '-100', policy = 'accept'): string =>
  `output {\n\t\ttype nat hook output priority ${priority}; policy ${policy};\n\t\tmeta l4proto tcp redirect to :5001\n\t}`
const prerouting = 'prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tmeta l4proto tcp redirect to :5001\n\t}'

t.test('replaced whole where the kernel cannot change it in place or the listing would differ', async t => {
  const want = table([prerouting, output()])
  t.equal(renderNftUpdate(want, table([prerouting, output('-101')])), undefined, 'a base chain at another priority')
  t.equal(renderNftUpdate(want, table([prerouting, output('-100', 'drop')])), undefined, 'another policy')
  t.equal(renderNftUpdate(want, table([prerouting, output().replace('type nat', 'type filter')])), undefined, 'another chain type')
  t.equal(renderNftUpdate(want, table([prerouting, output()], '\tcomment "sidecar-redirect/table"\n\tflags dormant')), undefined, 'the table dormant')
  t.equal(renderNftUpdate(want, table([output(), prerouting])), undefined, 'chains made in another order')
  t.equal(renderNftUpdate(want, table([output()])), undefined, 'a new chain would be listed after one made before it')
  t.equal(renderNftUpdate(table([output(), prerouting]), table([output()])), `${FLUSH}${table([output(), prerouting])}`, 'a new chain last')
  const counter = want.replace('\n}\n', '\n\n\tcounter seen {\n\t\tpackets 0 bytes 0\n\t}\n}\n')
  t.equal(renderNftUpdate(want, counter), undefined, 'an object that is neither a set nor a chain')
  const set = (type: string): string => `\tset services4 {\n\t\ttype ${type}\n\t\tflags interval\n\t}\n`
  const withSet = (type: string): string => want.replace('\tchain', `${set(type)}\n\tchain`)
  t.equal(renderNftUpdate(withSet('ipv4_addr'), withSet('ipv4_addr . inet_service')), undefined, 'a set of another type')
  t.equal(renderNftApply(want, table([output(), prerouting])), renderNftTransaction(want))
})
