// What clean removes and what a refused apply puts back, from what was read: rows of reads, each payload applied to
// its read with a model of iptables-restore (test/helpers/restore-model.ts) and the result compared to the byte.
import t from 'tap'
import { misplacedJumps } from '../../../../src/backend/iptables/apply.js'
import type { IptablesBackend } from '../../../../src/backend/iptables/iptables.js'
import { ownedIn } from '../../../../src/backend/iptables/parse-save.js'
import { JUMPS, renderState, renderTransaction } from '../../../../src/backend/iptables/render-iptables.js'
import { removalOf, renderSetRemoval, rollbackOf, sameOfOurs, setsOfOurs } from '../../../../src/backend/iptables/undo.js'
import { EnvironmentError } from '../../../../src/errors.js'
import { buildPlan } from '../../../../src/plan/build.js'
import { parseSettings } from '../../../../src/settings/parse.js'
import { normal, restore } from '../../../helpers/restore-model.js'
import { savedText } from '../../../helpers/saved.js'

const TOOL = 'iptables-nft'
const backend: IptablesBackend = { name: TOOL, save: async () => '', restore: async () => undefined }
const planOf = (env: Record<string, string> = {}) => buildPlan({ ...parseSettings(env), nameservers: [] }, ['ipv4']).families[0]!

// Foreign state around ours: a chain of its own, rules before and after our jumps, a filter table we never touch.
const FOREIGN_NAT = ['-A OUTPUT -p tcp -m tcp --dport 25 -j FOREIGN', '-A FOREIGN -j RETURN']
const withForeign = (ours: string, ahead: readonly string[] = [], after: readonly string[] = FOREIGN_NAT): string => {
  const nat = ours.includes('*nat\n') ? ours : `${ours}*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n`
  return `${nat
    .replace(/\*nat\n((?::[^\n]*\n)*)/, (_, heads: string) => `*nat\n${heads}:FOREIGN - [0:0]\n${ahead.join('\n')}${ahead.length > 0 ? '\n' : ''}`)
    .replace(
      /(\*nat\n[\s\S]*?)COMMIT/,
      (_, body: string) => `${body}${after.join('\n')}\nCOMMIT`,
    )}*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n`
}

/** The read with an empty raw table before it: a table iptables cannot delete again (legacy) once a rule made it. */
const withEmptyRaw = (read: string): string => `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n${read}`

const RETURN_AHEAD = '-A OUTPUT -d 198.18.0.99/32 -p tcp -j RETURN'
const applied = (env: Record<string, string>) => savedText(renderState(planOf(env)))

const ROLLBACKS: readonly { name: string; before: string; env: Record<string, string> }[] = [
  { name: 'nothing of ours before: a fresh apply is undone', before: withForeign(''), env: {} },
  { name: 'an earlier plan, rules changed', before: withForeign(applied({})), env: { ISTIO_OUTBOUND_EXCLUDE_PORTS: '443' } },
  { name: 'an earlier plan, a table added (DNS in raw)', before: withEmptyRaw(withForeign(applied({}))), env: { ISTIO_DNS_CAPTURE: 'all' } },
  { name: 'an earlier plan with a table the new one drops', before: withForeign(applied({ ISTIO_DNS_CAPTURE: 'all' })), env: {} },
  {
    name: 'our jump behind a foreign RETURN that apply moves ahead of it',
    before: withForeign(applied({}).replace(`${JUMPS.SIDECAR_OUTBOUND}\n`, ''), [], [RETURN_AHEAD, JUMPS.SIDECAR_OUTBOUND, ...FOREIGN_NAT]),
    env: { ISTIO_OUTBOUND_EXCLUDE_PORTS: '443' },
  },
  {
    name: 'the same, with nothing else changed: only the move is undone',
    before: withForeign(applied({}).replace(`${JUMPS.SIDECAR_OUTBOUND}\n`, ''), [], [RETURN_AHEAD, JUMPS.SIDECAR_OUTBOUND, ...FOREIGN_NAT]),
    env: {},
  },
  {
    name: 'a copy of our jump a race left behind, which apply deletes',
    before: withForeign(applied({}).replace(`${JUMPS.SIDECAR_OUTBOUND}\n`, `${JUMPS.SIDECAR_OUTBOUND}\n${JUMPS.SIDECAR_OUTBOUND}\n`)),
    env: {},
  },
]

for (const row of ROLLBACKS) {
  t.test(`rollback, ${row.name}: the read before is back to the byte`, async t => {
    const plan = planOf(row.env)
    const desired = renderState(plan)
    const existing = ownedIn(backend, 'ipv4', row.before)
    const forward = renderTransaction(desired, existing, misplacedJumps(backend, plan, row.before))
    const after = restore(row.before, forward)
    t.not(after, normal(row.before), 'apply changed something')
    t.equal(restore(after, rollbackOf(row.before, desired)), normal(row.before), 'from what apply wrote (the other family refused)')
    t.equal(
      restore(after, rollbackOf(row.before, ownedIn(backend, 'ipv4', after))),
      normal(row.before),
      'from what was read again (a later table refused)',
    )
    t.notOk(sameOfOurs(row.before, after), 'a read that differs is told apart')
    t.ok(sameOfOurs(row.before, normal(row.before)), 'the same read is the same')
  })
}

t.test('the old way (our chains restored, jumps left where apply put them) fails the moved-jump row', async t => {
  const row = ROLLBACKS[5]!
  const plan = planOf(row.env)
  const existing = ownedIn(backend, 'ipv4', row.before)
  const after = restore(row.before, renderTransaction(renderState(plan), existing, misplacedJumps(backend, plan, row.before)))
  t.not(restore(after, renderTransaction(existing, renderState(plan))), normal(row.before), 'so the row can catch it')
})

const CLEANS: readonly { name: string; read: string; chains: number; jumps: number }[] = [
  { name: 'nothing of ours', read: withForeign(''), chains: 0, jumps: 0 },
  { name: 'our default plan among foreign rules', read: withForeign(applied({})), chains: 2, jumps: 2 },
  {
    name: 'DNS and TPROXY: raw, mangle and nat',
    read: withForeign(applied({ ISTIO_DNS_CAPTURE: 'all', ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' })),
    chains: 5,
    jumps: 5,
  },
  {
    name: 'a jump moved behind a foreign rule, and a left-behind copy',
    read: withForeign(applied({}).replace(`${JUMPS.SIDECAR_OUTBOUND}\n`, ''), [], [RETURN_AHEAD, JUMPS.SIDECAR_OUTBOUND, JUMPS.SIDECAR_OUTBOUND]),
    chains: 2,
    jumps: 3,
  },
]

for (const row of CLEANS) {
  t.test(`clean, ${row.name}: removes ${row.chains} chains and ${row.jumps} jumps, and every foreign line stays`, async t => {
    const removal = removalOf(TOOL, 'ipv4', row.read)
    t.same([removal.chains, removal.jumps], [row.chains, row.jumps])
    const foreign = normal(row.read)
      .split('\n')
      .filter(l => !/SIDECAR_|sidecar-redirect\//.test(l))
      .join('\n')
    const after = removal.payload === undefined ? normal(row.read) : restore(row.read, removal.payload)
    t.equal(after, foreign, 'what is left is the foreign state, byte for byte')
    t.equal(removal.payload === undefined, row.chains + row.jumps === 0, 'nothing to remove, nothing sent')
  })
}

t.test('clean refuses, before anything goes, a foreign jump into our chain and a chain with our name that is not ours', async t => {
  const jumpedInto = withForeign(applied({}), [], ['-A OUTPUT -p udp -j SIDECAR_OUTBOUND'])
  t.throws(() => removalOf(TOOL, 'ipv4', jumpedInto), EnvironmentError)
  t.throws(() => removalOf(TOOL, 'ipv4', jumpedInto), {
    message: /rules that are not ours jump into our chains \(-A OUTPUT -p udp -j SIDECAR_OUTBOUND\)/,
  })
  const lookalike = '*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:SIDECAR_INBOUND - [0:0]\n-A SIDECAR_INBOUND -j RETURN\nCOMMIT\n'
  t.throws(() => removalOf(TOOL, 'ipv4', lookalike), { message: /chain SIDECAR_INBOUND has our name but is not ours/ })
})

const SET = (name: string, header: string) => [name, { header, members: [] }] as const
t.test("the sets clean destroys: every one of our names, ours by type and marker, whatever the plan's", async t => {
  const read = new Map([
    SET('SIDECAR_SVC4', 'hash:net family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0x1'),
    SET('SIDECAR_SVC6_PORTS-next', 'hash:net,port family inet6 hashsize 1024 maxelem 65536 comment'),
    SET('SIDECAR_SVC4_PORTS', 'hash:ip family inet hashsize 1024 maxelem 65536'),
    SET('OTHER', 'hash:net family inet hashsize 1024 maxelem 65536 comment'),
  ])
  t.same(setsOfOurs(read), ['SIDECAR_SVC4', 'SIDECAR_SVC6_PORTS-next'], "a look-alike with our name and someone else's type stays, and so does OTHER")
  t.equal(renderSetRemoval(setsOfOurs(read)), 'destroy SIDECAR_SVC4\ndestroy SIDECAR_SVC6_PORTS-next\n')
  t.equal(renderSetRemoval(setsOfOurs(new Map())), undefined, 'none: nothing to send')
})
