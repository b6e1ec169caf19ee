// plan: print exactly the payload init would send, with the chosen backend, into a namespace that holds none of
// our rules. Runs nothing and reads nothing (but the routes of excluded interfaces, with `ip route show`, when
// their scope is routes: init's plan depends on them), so it works without root, on a laptop, in CI.

import type { Io } from '../io.js'
import { buildPlan } from '../plan/build.js'
import { renderIpsetSwap } from '../backend/iptables/render-ipset.js'
import { EMPTY_STATE, renderState, renderTransaction } from '../backend/iptables/render-iptables.js'
import { renderNftTable, renderNftTransaction } from '../backend/nftables/render-nft.js'
import { renderRoutingCommands } from '../backend/routing.js'
import type { Plan, PlanFacts } from '../plan/types.js'
import { readPlanFacts } from '../backend/interface-routes.js'
import { FAMILIES, type Settings } from '../settings/types.js'

const RESTORE = { ipv4: 'iptables-restore', ipv6: 'ip6tables-restore' } as const

// TPROXY's policy routing is written by `ip`, one command each, before the rules.
const renderRouting = (plan: Plan): string =>
  plan.families
    .flatMap(p => (p.routing ? renderRoutingCommands(p.family, p.routing) : []))
    .map(command => `# ${command}\n`)
    .join('')

/** renderPlanText is the whole plan output. Pure. */
export const renderPlanText = (settings: Settings, facts: PlanFacts = {}): string =>
  renderPayloads(buildPlan(settings, planFamilies(settings), facts), settings.backend === 'nftables')

/** renderPayloads: what init sends for a plan into a namespace without our rules, for nft or the iptables tools. Pure. */
export const renderPayloads = (plan: Plan, nft: boolean): string => {
  if (nft) return `# nft -f -\n${renderNftTransaction(renderNftTable(plan))}${renderRouting(plan)}`
  // The iptables backends: the explicit method's sets first (the rules refer to them), then one restore per family.
  const sets = plan.families.flatMap(f => f.sets)
  const ipset = sets.length === 0 ? [] : [`# ipset restore\n${renderIpsetSwap(sets)}`]
  const rules = plan.families.map(p => `# ${p.family}: ${RESTORE[p.family]} --noflush\n${renderTransaction(renderState(p), EMPTY_STATE)}`)
  return [...ipset, ...rules].join('\n') + renderRouting(plan)
}

const planFamilies = (settings: Settings) => (settings.ipv6 === 'false' ? FAMILIES.filter(f => f === 'ipv4') : FAMILIES)

export const runPlan = async (settings: Settings, io: Io): Promise<void> =>
  void io.out.write(renderPlanText(settings, await readPlanFacts(settings, planFamilies(settings), io.exec)))
