// The steps every rule command starts with: look at the host, pick the backend, and build the plan.

import { probeHost, type HostFacts } from '../backend/detect.js'
import { createIptablesRules } from '../backend/iptables/iptables-rules.js'
import { createNftablesRules } from '../backend/nftables/nftables.js'
import { withRouting } from '../backend/routing.js'
import type { RuleBackend } from '../backend/types.js'
import type { Io } from '../io.js'
import { tproxyRouting } from '../plan/features/tproxy.js'
import type { AcceptedPrograms } from '../path/analyze.js'
import { familiesFor, planFor, type ModeRequest } from '../plan/modes/index.js'
import type { LocalRouting, Plan } from '../plan/types.js'
import type { BackendChoice, Ipv6Mode, Settings } from '../settings/types.js'
import { readPlanFacts } from '../backend/interface-routes.js'

export interface Prepared {
  readonly facts: HostFacts
  readonly plan: Plan
  readonly backend: RuleBackend
}

/** Times one step; init reports each, the other commands pass nothing. */
export type Timed = <T>(phase: string, work: () => Promise<T>) => Promise<T>
const untimed: Timed = (_phase, work) => work()

/** What the host probe and the backend need besides the plan: which backend, which families, whose routing clean removes. */
export interface Target {
  readonly backend: BackendChoice
  readonly ipv6: Ipv6Mode
  /** TPROXY's policy routing that is ours whatever the plan says (clean removes it). */
  readonly routing: LocalRouting
  /** Take the families the host has even when the mode fixes them (clean: an earlier run may have used IPv6). */
  readonly hostFamilies?: boolean
  /** The BPF programs the whole-path check accepts at the devices' hooks (none unless the operator names them). */
  readonly acceptedBpf?: AcceptedPrograms
}

/** prepareMode: the host probe, the plan of the mode (for the families it fixes, or the host's), and the backend. */
export const prepareMode = async (request: ModeRequest, target: Target, io: Io, timed: Timed = untimed): Promise<Prepared> => {
  const fixed = target.hostFamilies ? undefined : familiesFor(request)
  const facts = await timed('probe', () => probeHost(target.backend, target.ipv6, io.exec, io.fs, fixed))
  // Our mode's plan depends on the excluded interfaces' routes (their scope `routes`), read once the families are known.
  const planned: ModeRequest =
    request.mode === 'sidecar'
      ? { mode: 'sidecar', input: { ...request.input, facts: await readPlanFacts(request.input.settings, facts.families.value, io.exec) } }
      : request
  const plan = await timed('plan', async () => planFor(planned, facts.families.value))
  const kind = facts.variant.value
  const accepted = target.acceptedBpf ?? new Set<string>()
  if (kind === 'nftables') return { facts, plan, backend: withRouting(createNftablesRules(io.exec, io.fs, accepted), io.exec, target.routing, io.fs) }
  return {
    facts,
    plan,
    backend: withRouting(createIptablesRules(io.exec, io.fs, kind, facts.ipv4Saved[kind], accepted), io.exec, target.routing, io.fs),
  }
}

export const prepare = (settings: Settings, io: Io, timed: Timed = untimed): Promise<Prepared> =>
  prepareMode(
    { mode: 'sidecar', input: { settings } },
    {
      backend: settings.backend,
      ipv6: settings.ipv6,
      routing: tproxyRouting(settings),
      acceptedBpf: settings.acceptBpfPrograms === 'all' ? 'all' : new Set(settings.acceptBpfPrograms),
    },
    io,
    timed,
  )

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
