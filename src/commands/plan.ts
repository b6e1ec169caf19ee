// plan: print exactly the payload init would send, with the backend init would choose, into a namespace that holds
// none of our rules. Runs nothing and changes nothing: it reads what init's choice reads (under ISTIO_BACKEND=auto,
// the /proc files detection looks at) and the routes of excluded interfaces when their scope is routes (init's
// plan depends on them), so it works without root, on a laptop, in CI.

import type { BackendKind } from '../backend/detect.js'
import { renderIptablesPayload } from '../backend/iptables/iptables-rules.js'
import { renderNftPayload } from '../backend/nftables/nftables.js'
import { renderRoutingComments } from '../backend/routing.js'
import type { Io } from '../io.js'
import { buildPlan } from '../plan/build.js'
import type { Plan, PlanFacts } from '../plan/types.js'
import { readPlanFacts } from '../backend/interface-routes.js'
import { routedInterfaces } from '../plan/features/exclude-interfaces.js'
import { FAMILIES, type Settings } from '../settings/types.js'
import { backendFor, decideBackend, sidecarTarget } from './prepare.js'

/** renderPayloads: what init sends for a plan into a namespace without our rules, for nft or the iptables tools. Pure. */
export const renderPayloads = (plan: Plan, nft: boolean): string =>
  (nft ? renderNftPayload(plan) : renderIptablesPayload(plan)) + renderRoutingComments(plan)

/** renderPlanText is the whole payload for the settings and the backend `kind` (both iptables variants take the same text). Pure. */
export const renderPlanText = (settings: Settings, facts: PlanFacts, kind: BackendKind): string =>
  renderPayloads(buildPlan(settings, planFamilies(settings), facts), kind === 'nftables')

const planFamilies = (settings: Settings) => (settings.ipv6 === 'false' ? FAMILIES.filter(f => f === 'ipv4') : FAMILIES)

/** runPlan prints the chosen backend and why, then what it would be sent: the backend's own render. */
export const runPlan = async (settings: Settings, io: Io): Promise<void> => {
  const families = planFamilies(settings)
  const target = sidecarTarget(settings)
  const [variant, facts] = await Promise.all([
    decideBackend(target, { value: [...families], reason: 'the plan shows every family it may capture' }, io),
    readPlanFacts(routedInterfaces(settings), families, io.exec),
  ])
  const backend = backendFor(variant.value, io, target)
  io.out.write(`# backend: ${backend.name}: ${variant.reason}\n${backend.render(buildPlan(settings, families, facts))}`)
}
