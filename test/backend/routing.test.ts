// TPROXY's policy routing through a recording fake at the exec seam: what is read, added, rolled back and cleaned,
// and that a foreign route or a rule that only looks like ours is never touched. No root needed.
import t from 'tap'
import { withRouting } from '../../src/backend/routing.js'
import type { RuleBackend } from '../../src/backend/types.js'
import { ApplyError, EnvironmentError } from '../../src/errors.js'
import { buildPlan } from '../../src/plan/build.js'
import { tproxyRouting } from '../../src/plan/features/tproxy.js'
import { parseSettings } from '../../src/settings/parse.js'
import { fakeExec, type Expected } from '../helpers/fake-exec.js'

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
  apply: async () => {
    calls.push('rules')
    if (refuse) throw new ApplyError('ipv4: the kernel refused the transaction')
    return []
  },
  readBack: async () => [],
  clean: async () => ['ipv4: nothing of ours was there'],
})

t.test('apply adds the route, then the rule, per family, before the rules', async t => {
  const fake = fakeExec(t, [...reads(RULES4, RULES6), ...ADDS])
  const order: string[] = []
  const applied = await withRouting(inner(order), fake.exec, owned).apply(plan)
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
  const applied = await withRouting(inner([]), fake.exec, owned).apply(plan)
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
  const drift = await withRouting(inner([]), fake.exec, owned).readBack(plan)
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
  t.same(await backend.apply(redirect), [])
  t.same(await backend.readBack(redirect), [])
  fake.done()
})

t.test('without ip: TPROXY is refused naming iproute2, and clean says it could not have written any', async t => {
  const missing = () => new EnvironmentError('ip is not installed (the image needs the iptables package)')
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
