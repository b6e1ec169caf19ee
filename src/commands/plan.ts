// plan: print exactly the payload init would send into a namespace that holds none of our rules. Runs nothing and
// reads nothing, so it works without root, on a laptop, in CI.

import type { Output } from '../log.js'
import { buildPlan } from '../plan/build.js'
import { EMPTY_STATE, renderState, renderTransaction } from '../plan/render-iptables.js'
import { FAMILIES, type Settings } from '../settings/types.js'

const RESTORE = { ipv4: 'iptables-restore', ipv6: 'ip6tables-restore' } as const

/** renderPlanText is the whole plan output. Pure. */
export const renderPlanText = (settings: Settings): string => {
  const families = settings.ipv6 === 'false' ? FAMILIES.filter(f => f === 'ipv4') : FAMILIES
  return buildPlan(settings, families)
    .families.map(p => `# ${p.family}: ${RESTORE[p.family]} --noflush\n${renderTransaction(renderState(p), EMPTY_STATE)}`)
    .join('\n')
}

export const runPlan = (settings: Settings, out: Output): void => out.write(renderPlanText(settings))
