// TPROXY's policy routing through a recording fake at the exec seam: what is read, added, rolled back and cleaned,
// and that a foreign route or a rule that only looks like ours is never touched. No root needed.
import t from 'tap'
import { mayHoldRoute, removalOf, withRouting } from '../../../src/backend/routing.js'
import type { RuleBackend } from '../../../src/backend/types.js'
import { ApplyError, EnvironmentError } from '../../../src/errors.js'
import { NotInstalled } from '../../../src/exec/exec.js'
import { driftOf } from '../../../src/verify/drift.js'
import { buildPlan } from '../../../src/plan/build.js'
import { tproxyRouting } from '../../../src/plan/features/tproxy.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { fakeExec, type Expected } from '../../helpers/fake-exec.js'

const settings = parseSettings({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' })
const plan = buildPlan(settings, ['ipv4', 'ipv6'])
const owned = tproxyRouting(settings)

const RULES4 = '0:\tfrom all lookup 255\n32766:\tfrom all lookup 254\n32767:\tfrom all lookup 253\n'
const RULES6 = '0:\tfrom all lookup 255\n32766:\tfrom all lookup 254\n'
const OUR_RULE = '32000:\tfrom all fwmark 0x539 lookup 133\n'
// Look-alikes: another priority, another mark, another table. None of them is ours.
const LOOK_ALIKES = '31999:\tfrom all fwmark 0x539 lookup 133\n32000:\tfrom all fwmark 0x53a lookup 133\n32000:\tfrom all fwmark 0x539 lookup 134\n'
const NO_TABLE = { stderr: 'Error: ipv4: FIB table does not exist.\nDump terminated\n' }

const reads = (rules4: string, rules6: string, route4?: string, route6?: string): Expected[] => [
  { run: 'ip -N -4 rule show', stdout: rules4 },
  { run: 'ip -N -6 rule show', stdout: rules6 },
  route4 === undefined ? { run: 'ip -4 route show table 133', fails: NO_TABLE } : { run: 'ip -4 route show table 133', stdout: route4 },
  route6 === undefined ? { run: 'ip -6 route show table 133', fails: NO_TABLE } : { run: 'ip -6 route show table 133', stdout: route6 },
]

const ADDS: Expected[] = [
  { run: 'ip -4 route add local default dev lo table 133' },
  { run: 'ip -4 rule add priority 32000 fwmark 1337 lookup 133' },
  { run: 'ip -6 route add local default dev lo table 133' },
  { run: 'ip -6 rule add priority 32000 fwmark 1337 lookup 133' },
]

const ROUTE4 = 'local default dev lo scope host \n'
const ROUTE6 = 'local default dev lo metric 1024 pref medium\n'

const inner = (calls: string[], refuse = false): RuleBackend => ({
  name: 'fake',
  classify: () => ({ reason: 'refused' }),
  render: () => '',
  apply: async () => {
    calls.push('rules')
    if (refuse) throw new ApplyError('ipv4: the kernel refused the transaction')
    return { applied: [], known: {} }
  },
  read: async () => ({}),
  clean: async () => ['ipv4: nothing of ours was there'],
})

t.test('apply adds the route, then the rule, per family, before the rules', async t => {
  const fake = fakeExec(t, [...reads(RULES4, RULES6), ...ADDS])
  const order: string[] = []
  const { applied } = await withRouting(inner(order), fake.exec, owned).apply(plan)
  fake.done()
  t.same(
    fake.calls.filter(c => c.includes(' add ')),
    ADDS.map(a => a.run),
  )
  t.same(order, ['rules'])
  t.same(
    applied.map(a => [a.scope, a.changed, a.where]),
    [
      ['ipv4 routing', true, 'ip rule 32000 (fwmark 0x539) and the local route of table 133'],
      ['ipv6 routing', true, 'ip rule 32000 (fwmark 0x539) and the local route of table 133'],
    ],
  )
})

t.test('apply over our routing already in place adds nothing; look-alike rules do not count as ours', async t => {
  const fake = fakeExec(t, reads(RULES4 + OUR_RULE + LOOK_ALIKES, RULES6 + OUR_RULE, ROUTE4, ROUTE6))
  const { applied } = await withRouting(inner([]), fake.exec, owned).apply(plan)
  fake.done()
  t.same(
    applied.map(a => a.changed),
    [false, false],
  )
  const again = fakeExec(t, [...reads(RULES4 + LOOK_ALIKES, RULES6, ROUTE4, ROUTE6), ADDS[1]!, ADDS[3]!])
  await withRouting(inner([]), again.exec, owned).apply(plan)
  again.done()
})

t.test('a foreign route in our table is refused before anything is written', async t => {
  const fake = fakeExec(t, reads(RULES4, RULES6, 'unicast 198.18.9.0/24 dev lo scope link \n'))
  const order: string[] = []
  const error = await withRouting(inner(order), fake.exec, owned)
    .apply(plan)
    .catch((e: unknown) => e)
  fake.done()
  t.type(error, EnvironmentError)
  t.match(
    (error as Error).message,
    /^ipv4 routing table 133 holds routes that are not ours \(unicast 198\.18\.9\.0\/24 dev lo scope link\).*nothing was changed/,
  )
  t.same(order, [], 'the rules were not applied')
})

t.test('rules refused: exactly what apply added goes again, and the refusal is reported', async t => {
  // The IPv4 route was there already (someone else's run left it, or ours): it stays.
  const fake = fakeExec(t, [
    ...reads(RULES4, RULES6, ROUTE4),
    ADDS[1]!,
    ADDS[2]!,
    ADDS[3]!,
    { run: 'ip -4 rule del priority 32000 fwmark 1337 lookup 133' },
    { run: 'ip -6 rule del priority 32000 fwmark 1337 lookup 133' },
    { run: 'ip -6 route del local default dev lo table 133' },
  ])
  const error = await withRouting(inner([], true), fake.exec, owned)
    .apply(plan)
    .catch((e: unknown) => e)
  fake.done()
  t.type(error, ApplyError)
  t.match((error as Error).message, /^ipv4: the kernel refused the transaction$/)
  t.notOk(fake.calls.includes('ip -4 route del local default dev lo table 133'))
})

t.test('a refused add takes back the adds before it; a failed take-back is named too', async t => {
  const refusedRule = {
    run: 'ip -6 rule add priority 32000 fwmark 1337 lookup 133',
    fails: { stderr: 'RTNETLINK answers: Operation not supported\n' },
  }
  const fake = fakeExec(t, [
    ...reads(RULES4, RULES6),
    ...ADDS.slice(0, 3),
    refusedRule,
    { run: 'ip -4 rule del priority 32000 fwmark 1337 lookup 133' },
    { run: 'ip -4 route del local default dev lo table 133' },
    { run: 'ip -6 route del local default dev lo table 133', fails: { stderr: 'RTNETLINK answers: No such process\n' } },
  ])
  const order: string[] = []
  const error = (await withRouting(inner(order), fake.exec, owned)
    .apply(plan)
    .catch((e: unknown) => e)) as ApplyError
  fake.done()
  t.type(error, ApplyError)
  t.match(
    error.message,
    /^ipv6 routing: ip -6 rule add priority 32000 fwmark 1337 lookup 133 was refused: RTNETLINK answers: Operation not supported; then removing the routing we added failed too: ipv6 routing: ip -6 route del .* was refused/,
  )
  t.same(order, [], 'the rules were never applied')
})

t.test('read-back names a missing rule or route and a foreign route', async t => {
  const fake = fakeExec(t, reads(RULES4 + OUR_RULE, RULES6, `${ROUTE4}unicast 198.18.9.0/24 dev lo scope link \n`, ROUTE6))
  const drift = driftOf(plan, await withRouting(inner([]), fake.exec, owned).read(plan))
  fake.done()
  t.same(drift, [
    { scope: 'ipv4 routing', drift: ['+ ip route table 133: unicast 198.18.9.0/24 dev lo scope link (not ours)'] },
    { scope: 'ipv6 routing', drift: ['- ip rule: 32000:\tfrom all fwmark 0x539 lookup 133'] },
  ])
})

t.test('clean removes our rule and route, rule first, whatever the mode, and leaves look-alikes', async t => {
  const redirect = buildPlan(parseSettings({}), ['ipv4', 'ipv6'])
  const fake = fakeExec(t, [
    ...reads(RULES4 + OUR_RULE + LOOK_ALIKES, RULES6, ROUTE4),
    { run: 'ip -4 rule del priority 32000 fwmark 1337 lookup 133' },
    { run: 'ip -4 route del local default dev lo table 133' },
  ])
  const lines = await withRouting(inner([]), fake.exec, owned).clean(redirect)
  fake.done()
  t.same(lines, [
    'ipv4: nothing of ours was there',
    'ipv4 routing: removed ip rule 32000 and the local route of table 133',
    'ipv6 routing: nothing of ours was there',
  ])
})

t.test('REDIRECT mode: apply and read-back run no ip command at all', async t => {
  const redirect = buildPlan(parseSettings({}), ['ipv4', 'ipv6'])
  const fake = fakeExec(t, [])
  const backend = withRouting(inner([]), fake.exec, owned)
  t.same(await backend.apply(redirect), { applied: [], known: {} })
  t.same(await backend.read(redirect), {})
  fake.done()
})

t.test('without ip: TPROXY is refused naming iproute2, and clean says it could not have written any', async t => {
  const missing = () => new NotInstalled('ip')
  const refused = fakeExec(t, [
    { run: 'ip -N -4 rule show', throws: missing },
    { run: 'ip -4 route show table 133', throws: missing },
    { run: 'ip -N -6 rule show', throws: missing },
    { run: 'ip -6 route show table 133', throws: missing },
  ])
  const order: string[] = []
  const error = await withRouting(inner(order), refused.exec, owned)
    .apply(plan)
    .catch((e: unknown) => e)
  t.type(error, EnvironmentError)
  t.match((error as Error).message, /^TPROXY's policy routing is written with ip, which is not installed \(the iproute2 package\)$/)
  t.same(order, [], 'the rules were not applied')
  const clean = fakeExec(t, [
    { run: 'ip -N -4 rule show', throws: missing },
    { run: 'ip -4 route show table 133', throws: missing },
    { run: 'ip -N -6 rule show', throws: missing },
    { run: 'ip -6 route show table 133', throws: missing },
  ])
  t.same(await withRouting(inner([]), clean.exec, owned).clean(plan), [
    'ipv4: nothing of ours was there',
    'routing: not checked, ip (iproute2) is not installed here, so no run here wrote any',
  ])
  const denied = fakeExec(t, [
    { run: 'ip -N -4 rule show', throws: () => new EnvironmentError('ip: not permitted') },
    { run: 'ip -4 route show table 133' },
    { run: 'ip -N -6 rule show' },
    { run: 'ip -6 route show table 133' },
  ])
  const other = await withRouting(inner([]), denied.exec, owned)
    .clean(plan)
    .catch((e: unknown) => e)
  t.match((other as Error).message, /not permitted/, 'any other failure still fails clean')
})

// /proc as a pod's netns shows it: fib_trie lists tables by id, ipv6_route every table's routes (no table column).
const FIB_TRIE = 'Main:\n  +-- 127.0.0.0/8 2 0 2\nLocal:\n  +-- 127.0.0.0/8 2 0 2\n'
const FIB_TRIE_133 = `Id 133:\n  |-- 0.0.0.0\n     /0 host LOCAL\n${FIB_TRIE}`
const Z = '0'.repeat(32)
const IPV6_ROUTE = [
  `${Z} 00 ${Z} 00 ${Z} ffffffff 00000001 00000000 00200200       lo`, // the kernel's unreachable default
  `${'0'.repeat(31)}1 80 ${Z} 00 ${Z} 00000000 00000002 00000000 80200001       lo`, // ::1, local
].join('\n')
const IPV6_ROUTE_LOCAL_DEFAULT = `${Z} 00 ${Z} 00 ${Z} 00000400 00000001 00000000 80000001       lo\n${IPV6_ROUTE}`

t.test('mayHoldRoute: a route of ours can be there only where /proc shows one of its shape', async t => {
  t.equal(mayHoldRoute('ipv4', 133, FIB_TRIE), false, 'no table 133 in fib_trie')
  t.equal(mayHoldRoute('ipv4', 133, FIB_TRIE_133), true, 'table 133 in fib_trie')
  t.equal(mayHoldRoute('ipv4', 13, FIB_TRIE_133), false, 'another table only')
  t.equal(mayHoldRoute('ipv6', 133, IPV6_ROUTE), false, "no local default route (the kernel's unreachable one is not)")
  t.equal(mayHoldRoute('ipv6', 133, IPV6_ROUTE_LOCAL_DEFAULT), true, 'a local default route on lo')
  t.equal(mayHoldRoute('ipv6', 133, undefined), false, 'no IPv6 at all')
})

t.test('clean asks ip only in the families where /proc shows a route of ours may be; a /proc it cannot read, it does not trust', async t => {
  const procFs = (files: Record<string, string | undefined>) => ({
    readFile: async (path: string) => {
      if (!(path in files)) throw new EnvironmentError(`cannot read ${path}: EACCES`)
      return files[path]
    },
  })
  const none = fakeExec(t, [])
  t.same(
    await withRouting(inner([]), none.exec, owned, procFs({ '/proc/net/fib_trie': FIB_TRIE, '/proc/net/ipv6_route': IPV6_ROUTE })).clean(plan),
    ['ipv4: nothing of ours was there', 'ipv4 routing: nothing of ours was there', 'ipv6 routing: nothing of ours was there'],
    'nothing in /proc: no ip command at all',
  )
  none.done()
  const v4 = fakeExec(t, [
    ...reads(RULES4 + OUR_RULE, RULES6, ROUTE4)
      .slice(0, 3)
      .filter(e => !e.run.includes('-6')),
    { run: 'ip -4 rule del priority 32000 fwmark 1337 lookup 133' },
    { run: 'ip -4 route del local default dev lo table 133' },
  ])
  t.same(
    await withRouting(inner([]), v4.exec, owned, procFs({ '/proc/net/fib_trie': FIB_TRIE_133, '/proc/net/ipv6_route': IPV6_ROUTE })).clean(plan),
    [
      'ipv4: nothing of ours was there',
      'ipv4 routing: removed ip rule 32000 and the local route of table 133',
      'ipv6 routing: nothing of ours was there',
    ],
    'table 133 in fib_trie: IPv4 asked and cleaned, IPv6 not asked',
  )
  v4.done()
  const unreadable = fakeExec(t, [
    { run: 'ip -N -6 rule show', stdout: RULES6 + OUR_RULE },
    { run: 'ip -6 route show table 133', stdout: ROUTE6 },
    { run: 'ip -6 rule del priority 32000 fwmark 1337 lookup 133' },
    { run: 'ip -6 route del local default dev lo table 133' },
  ])
  t.same(
    await withRouting(inner([]), unreadable.exec, owned, procFs({ '/proc/net/fib_trie': FIB_TRIE })).clean(plan),
    [
      'ipv4: nothing of ours was there',
      'ipv4 routing: nothing of ours was there',
      'ipv6 routing: removed ip rule 32000 and the local route of table 133',
    ],
    'ipv6_route unreadable: IPv6 asked with ip, and cleaned',
  )
  unreadable.done()
})

// What clean (from what it read) and a refused apply (from what it added) remove: the rule before the route, so the
// rule never points at a table without its route; nothing that was not found.
const REMOVALS = [
  { found: { rule: true, route: true }, steps: ['del rule', 'del route'] },
  { found: { rule: true, route: false }, steps: ['del rule'] },
  { found: { rule: false, route: true }, steps: ['del route'] },
  { found: { rule: false, route: false }, steps: [] },
] as const
for (const row of REMOVALS) {
  t.test(`removalOf ${JSON.stringify(row.found)}: ${row.steps.join(', ') || 'nothing'}`, async t => {
    t.same(
      removalOf(row.found).map(s => `${s.verb} ${s.object}`),
      row.steps,
    )
  })
}
