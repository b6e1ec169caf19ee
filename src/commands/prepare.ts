// The steps every rule command starts with: look at the host, pick the backend, and build the plan.

import { probeHost, type HostFacts } from '../backend/detect.js'
import { createIptablesRules } from '../backend/iptables/iptables-rules.js'
import { createNftablesRules } from '../backend/nftables/nftables.js'
import { withRouting } from '../backend/routing.js'
import type { RuleBackend } from '../backend/types.js'
import type { Io } from '../io.js'
import { buildPlan } from '../plan/build.js'
import { tproxyRouting } from '../plan/features/tproxy.js'
import type { Plan } from '../plan/types.js'
import type { Settings } from '../settings/types.js'
import { readPlanFacts } from '../backend/interface-routes.js'

export interface Prepared {
  readonly facts: HostFacts
  readonly plan: Plan
  readonly backend: RuleBackend
}

/** Times one step; init reports each, the other commands pass nothing. */
export type Timed = <T>(phase: string, work: () => Promise<T>) => Promise<T>
const untimed: Timed = (_phase, work) => work()

export const prepare = async (settings: Settings, io: Io, timed: Timed = untimed): Promise<Prepared> => {
  const facts = await timed('probe', () => probeHost(settings.backend, settings.ipv6, io.exec, io.fs))
  const planFacts = await readPlanFacts(settings, facts.families.value, io.exec)
  const plan = await timed('plan', async () => buildPlan(settings, facts.families.value, planFacts))
  const kind = facts.variant.value
  const routing = tproxyRouting(settings)
  const accepted = settings.acceptBpfPrograms === 'all' ? 'all' : new Set(settings.acceptBpfPrograms)
  if (kind === 'nftables') return { facts, plan, backend: withRouting(createNftablesRules(io.exec, io.fs, accepted), io.exec, routing) }
  return { facts, plan, backend: withRouting(createIptablesRules(io.exec, io.fs, kind, facts.ipv4Saved[kind], accepted), io.exec, routing) }
}

export const describeBackend = ({ facts, backend }: Prepared): string => `${backend.name}: ${facts.variant.reason}`

export const describeFamilies = ({ facts }: Prepared): string => `${facts.families.value.join(', ')}: ${facts.families.reason}`

/** Holds the namespace's rule lock for the duration of `work`. */
export const withLock = async <T>(io: Io, work: () => Promise<T>): Promise<T> => {
  const release = await io.lock()
  try {
    return await work()
  } finally {
    await release()
  }
}
