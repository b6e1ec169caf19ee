// The steps every rule command starts with: look at the host, pick the backend, and build the plan. `plan` picks
// its backend here too (decideBackend, backendFor), so what it prints is what init would send.

import { EnvironmentError } from '../errors.js'
import { chooseVariant, probeHost, type BackendKind, type Decision, type HostFacts } from '../backend/detect.js'
import { createIptablesRules } from '../backend/iptables/iptables-rules.js'
import { createNftablesRules } from '../backend/nftables/nftables.js'
import { withRouting } from '../backend/routing.js'
import type { RuleBackend } from '../backend/types.js'
import type { Io } from '../io.js'
import { tproxyRouting } from '../plan/features/tproxy.js'
import type { AcceptedPrograms } from '../path/analyze.js'
import { familiesFor, planFor, routedFor, type ModeRequest } from '../plan/modes/index.js'
import type { LocalRouting, Plan } from '../plan/types.js'
import type { BackendChoice, Family, Ipv6Mode, Settings } from '../settings/types.js'
import { readPlanFacts } from '../backend/interface-routes.js'
import { legacyNamesOnce } from '../backend/legacy-names.js'

export interface Prepared {
  readonly facts: HostFacts
  readonly plan: Plan
  readonly backend: RuleBackend
  /** The BPF programs the whole-path check accepts unjudged, for drift. */
  readonly accepted: AcceptedPrograms
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
  // A mode's plan may depend on interfaces' routes (ours: the excluded interfaces' with scope `routes`), read once
  // the families are known.
  const planFacts = await readPlanFacts(routedFor(request), facts.families.value, io.exec)
  const plan = await timed('plan', async () => planFor(request, facts.families.value, planFacts))
  const kind = facts.variant.value
  const backend = backendFor(kind, io, target, facts)
  return { facts, plan, backend, accepted: target.acceptedBpf ?? new Set<string>() }
}

/**
 * backendFor: the rule backend of a kind, with TPROXY's routing beside it; `seen` is what detection read (-save text,
 * legacy's lists of tables), passed along rather than read again. Without it (plan only renders) nothing is read
 * until needed, then once.
 */
export const backendFor = (
  kind: BackendKind,
  io: Io,
  target: Pick<Target, 'routing'>,
  seen?: Pick<HostFacts, 'ipv4Saved' | 'legacyNames'>,
): RuleBackend => {
  const legacyNames = legacyNamesOnce(io.fs, seen?.legacyNames)
  return withRouting(
    kind === 'nftables'
      ? createNftablesRules(io.exec, io.fs, legacyNames)
      : createIptablesRules(io.exec, io.fs, kind, seen?.ipv4Saved[kind], legacyNames),
    io.exec,
    target.routing,
    io.fs,
  )
}

/** The target of our own mode's commands, from its settings. */
export const sidecarTarget = (settings: Settings): Target => ({
  backend: settings.backend,
  ipv6: settings.ipv6,
  routing: tproxyRouting(settings),
  acceptedBpf: settings.acceptBpfPrograms === 'all' ? 'all' : new Set(settings.acceptBpfPrograms),
})

export const prepare = (settings: Settings, io: Io, timed: Timed = untimed): Promise<Prepared> =>
  prepareMode({ mode: 'sidecar', input: { settings } }, sidecarTarget(settings), io, timed)

/**
 * decideBackend: the backend init would choose for `target` here, and why, for `plan`. A set backend needs no look;
 * under auto it is init's own probe (probeHost: /proc, and -save only where legacy tables exist). Where this
 * process may not look (plan as a user on a laptop), it says so and takes auto's default, nf_tables, as
 * chooseVariant does for a namespace without legacy tables: init decides again in the pod's own namespace.
 */
export const decideBackend = async (
  target: Pick<Target, 'backend' | 'ipv6'>,
  families: Decision<Family[]>,
  io: Io,
): Promise<Decision<BackendKind>> => {
  if (target.backend !== 'auto') return chooseVariant(target.backend, { legacyTables: [] })
  try {
    return (await probeHost('auto', target.ipv6, io.exec, io.fs, families)).variant
  } catch (error) {
    if (!(error instanceof EnvironmentError)) throw error
    const { value } = chooseVariant('auto', { legacyTables: [] })
    return {
      value,
      reason: `assumed: this host could not be looked at (${error.message}); init decides where it runs, and without iptables-legacy tables there takes this`,
    }
  }
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
