// The table of modes: what each needs read of the host before its plan (routedFor), and that the plan gets it.
import t from 'tap'
import { planFor, routedFor, type ModeRequest } from '../../../../src/plan/modes/index.js'
import { parseArgv } from '../../../../src/settings/istio/argv.js'
import { readIstioValues, resolveIstioConfig } from '../../../../src/settings/istio/config.js'
import { ALL_ISTIO_FLAGS } from '../../../../src/settings/istio/options.js'
import { parseCidr } from '../../../../src/settings/cidr.js'
import { parseSettings } from '../../../../src/settings/parse.js'
import { BASE_ISTIO_ARGS, GROUP_FILE, RESOLV_DEFAULT } from '../../../helpers/istio-matrix.js'

const sidecar = (env: Record<string, string>): ModeRequest => ({ mode: 'sidecar', input: { settings: parseSettings(env) } })
const istio = (args: string[]): ModeRequest => {
  const values = readIstioValues(parseArgv([...BASE_ISTIO_ARGS, ...args], ALL_ISTIO_FLAGS), {})
  const config = resolveIstioConfig(values, {}, { passwd: undefined, group: GROUP_FILE, resolvConf: RESOLV_DEFAULT, addresses: ['198.18.0.1'] })
  return { mode: 'istio', input: { config, flavour: 'iptables' } }
}

const ROWS: readonly { name: string; request: ModeRequest; routed: readonly string[] }[] = [
  { name: 'ours, no excluded interface', request: sidecar({}), routed: [] },
  {
    name: 'ours, excluded interfaces with scope routes (the default)',
    request: sidecar({ ISTIO_EXCLUDE_INTERFACES: 'side0,side1' }),
    routed: ['side0', 'side1'],
  },
  { name: 'ours, scope all', request: sidecar({ ISTIO_EXCLUDE_INTERFACES: 'side0', ISTIO_EXCLUDE_INTERFACES_SCOPE: 'all' }), routed: [] },
  { name: "Istio's, with an excluded interface", request: istio(['--istio-exclude-interfaces', 'side0']), routed: [] },
]

for (const row of ROWS) t.test(`${row.name}: routes read for ${JSON.stringify(row.routed)}`, async t => t.same(routedFor(row.request), row.routed))

t.test("the routes read reach our mode's plan: each becomes the excluded interface's return", async t => {
  const request = sidecar({ ISTIO_EXCLUDE_INTERFACES: 'side0' })
  const routes = new Map([['side0', [parseCidr('198.18.1.0/24')]]])
  const rules = (facts = {}) => JSON.stringify(planFor(request, ['ipv4'], facts))
  t.match(rules({ interfaceRoutes: routes }), /198\.18\.1\.0/)
  t.notMatch(rules(), /198\.18\.1\.0/, 'without them, no route is exempt')
})
