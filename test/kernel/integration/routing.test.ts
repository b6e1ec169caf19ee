// TPROXY's policy routing on a real kernel, in both families: apply adds exactly our rule and route and reads them
// back, a second apply changes nothing, refused rules leave nothing behind, a foreign route in our table is refused
// with nothing changed, and clean leaves the namespace's rules and routes byte-identical, look-alikes included.
import t from 'tap'
import { ROUTE_LINE, ruleLine, withRouting } from '../../../src/backend/routing.js'
import type { RuleBackend } from '../../../src/backend/types.js'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { ApplyError, EnvironmentError } from '../../../src/errors.js'
import type { Exec } from '../../../src/exec/exec.js'
import { buildPlan } from '../../../src/plan/build.js'
import { tproxyRouting } from '../../../src/plan/features/tproxy.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { kernelAvailable, snapshot, withSandbox } from '../../helpers/kernel.js'

const settings = parseSettings({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' })
const plan = buildPlan(settings, ['ipv4', 'ipv6'])
const owned = tproxyRouting(settings)

const rulesBackend = (refuse: boolean): RuleBackend => ({
  name: 'rules',
  apply: async () => {
    if (refuse) throw new ApplyError('ipv6: the kernel refused the transaction')
    return []
  },
  readBack: async () => [],
  clean: async () => [],
})

const podExec =
  (box: Sandbox): Exec =>
  (file, args, input) =>
    box.exec('pod', file, args, input)

// Someone else's policy routing: look-alike rules (another priority, mark or table) and a local route elsewhere.
const addForeign = async (box: Sandbox): Promise<void> => {
  for (const family of ['-4', '-6']) {
    await box.exec('pod', 'ip', [family, 'rule', 'add', 'priority', '31999', 'fwmark', '1337', 'lookup', '134'])
    await box.exec('pod', 'ip', [family, 'rule', 'add', 'priority', '32000', 'fwmark', '1338', 'lookup', '133'])
    await box.exec('pod', 'ip', [family, 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', '134'])
  }
}

t.test('policy routing: apply, read back, re-apply, refusal, rollback and clean', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await addForeign(box)
  const exec = podExec(box)
  const before = await snapshot(box)

  const applied = await withRouting(rulesBackend(false), exec, owned).apply(plan)
  t.same(
    applied.map(a => [a.scope, a.changed]),
    [
      ['ipv4 routing', true],
      ['ipv6 routing', true],
    ],
  )
  for (const [flag, family] of [
    ['-4', 'ipv4'],
    ['-6', 'ipv6'],
  ] as const) {
    t.match((await box.exec('pod', 'ip', ['-N', flag, 'rule', 'show'])).stdout, ruleLine(owned), `${family}: our rule is in place`)
    t.equal((await box.exec('pod', 'ip', [flag, 'route', 'show', 'table', '133'])).stdout.trim(), ROUTE_LINE[family], `${family}: our route`)
  }
  t.same(await withRouting(rulesBackend(false), exec, owned).readBack(plan), [
    { scope: 'ipv4 routing', drift: [] },
    { scope: 'ipv6 routing', drift: [] },
  ])
  const again = await withRouting(rulesBackend(false), exec, owned).apply(plan)
  t.same(
    again.map(a => a.changed),
    [false, false],
    'a second apply changes nothing',
  )

  t.same(await withRouting(rulesBackend(false), exec, owned).clean(plan), [
    'ipv4 routing: removed ip rule 32000 and the local route of table 133',
    'ipv6 routing: removed ip rule 32000 and the local route of table 133',
  ])
  t.equal(await snapshot(box), before, 'clean leaves every rule and route of the namespace as it was')

  const refused = await withRouting(rulesBackend(true), exec, owned)
    .apply(plan)
    .catch((e: unknown) => e)
  t.type(refused, ApplyError)
  t.equal(await snapshot(box), before, 'refused rules: the routing apply added is gone again')

  await box.exec('pod', 'ip', ['-6', 'route', 'add', 'unicast', '2001:db8:9::/64', 'dev', 'lo', 'table', '133'])
  const withForeign = await snapshot(box)
  const foreign = await withRouting(rulesBackend(false), exec, owned)
    .apply(plan)
    .catch((e: unknown) => e)
  t.type(foreign, EnvironmentError)
  t.match((foreign as Error).message, /ipv6 routing table 133 holds routes that are not ours \(2001:db8:9::\/64 dev lo /)
  t.equal(await snapshot(box), withForeign, 'a foreign route in our table: refused, nothing changed')
  t.same(await withRouting(rulesBackend(false), exec, owned).clean(plan), [
    'ipv4 routing: nothing of ours was there',
    'ipv6 routing: nothing of ours was there',
  ])
  t.equal(await snapshot(box), withForeign, 'clean leaves the foreign route in our table')
})
