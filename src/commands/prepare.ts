// The steps every rule command starts with: look at the host, pick the backend, and build the plan.

import type { FamilyTarget } from '../backend/apply.js'
import { probeHost, type HostFacts } from '../backend/detect.js'
import { createIptablesBackend, type IptablesBackend } from '../backend/iptables.js'
import type { Io } from '../io.js'
import { buildPlan } from '../plan/build.js'
import { renderState } from '../plan/render-iptables.js'
import type { Plan } from '../plan/types.js'
import type { Settings } from '../settings/types.js'

export interface Prepared {
  readonly facts: HostFacts
  readonly plan: Plan
  readonly backend: IptablesBackend
  readonly targets: readonly FamilyTarget[]
}

export const prepare = async (settings: Settings, io: Io): Promise<Prepared> => {
  const facts = await probeHost(settings.backend, settings.ipv6, io.exec, io.fs)
  const plan = buildPlan(settings, facts.families.value)
  const backend = createIptablesBackend(io.exec, facts.variant.value)
  const targets = plan.families.map(p => ({ family: p.family, desired: renderState(p) }))
  return { facts, plan, backend, targets }
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
