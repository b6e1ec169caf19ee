// What init, verify, clean and plan need from a backend, whichever it is: render a plan as the text its tool takes,
// apply it atomically, read what the kernel holds, and remove everything of ours; its classify tells its tool's
// failures apart at the seam. Drift, the comparison of the plan with what was read, is not a backend's: one pure
// module computes it for all of them (src/verify/drift.ts). Scopes are the units a backend changes at once: each
// family for iptables, the one inet table for nftables.

import type { Classify } from '../exec/exec.js'
import type { SeenTable } from '../path/model.js'
import type { LocalRouting, Plan } from '../plan/types.js'
import type { Family } from '../settings/types.js'
import type { Variant } from './iptables/iptables.js'
import type { SavedSet } from './iptables/render-ipset.js'
import type { Elsewhere, Ruleset } from './whole-path.js'

export interface Applied {
  readonly scope: string
  readonly count: number
  /** What was counted: rules, the members of service sets, or addresses (on lo). */
  readonly unit: 'rules' | 'members' | 'addresses'
  /** Where they live, for the report: our chains, our table, our sets. */
  readonly where: string
  /** False when the kernel already held exactly the plan, and nothing was written. */
  readonly changed: boolean
}

export interface Drift {
  readonly scope: string
  /** A readable diff, empty when the kernel holds exactly the plan. */
  readonly drift: readonly string[]
  /** True when nothing of ours is in this scope at all (verify then says so in one line, not with a diff). */
  readonly absent?: boolean
}

/** An iptables backend's read: each family's -save text, our ipsets when the plan has any, and every other place. */
export interface IptablesRead {
  readonly tool: `iptables-${Variant}`
  readonly saved: ReadonlyMap<Family, string>
  /** Our sets as `ipset save` shows them; absent when the plan has none. */
  readonly sets?: ReadonlyMap<string, SavedSet>
  readonly elsewhere: Elsewhere
}

/** The native nftables backend's read: the whole ruleset (ours is a table in it), and every other place. */
export interface NftablesRead {
  readonly ruleset: Ruleset
  readonly elsewhere: Elsewhere
}

/** TPROXY's policy routing of one family as `ip` showed it. */
export interface RoutingRead {
  readonly family: Family
  readonly routing: LocalRouting
  readonly rule: boolean
  readonly route: boolean
  /** Routes in our table that are not ours: a more specific one would take marked packets elsewhere. */
  readonly foreign: readonly string[]
}

/** An address that must be on lo (Istio's ::6), and whether it is. */
export interface LoRead {
  readonly address: string
  readonly present: boolean
}

/** Everything read from the kernel for a plan: a value, compared with the plan by drift alone. */
export interface Reads {
  readonly iptables?: IptablesRead
  readonly nftables?: NftablesRead
  readonly routing?: readonly RoutingRead[]
  readonly lo?: LoRead
}

/**
 * What apply read that its write cannot have changed, handed to read so it is not read twice: the other places
 * (apply writes only our own tables), and a family or table apply left untouched (read under the namespace lock in
 * this same run).
 */
export interface Known {
  readonly iptables?: { readonly saved: ReadonlyMap<Family, string>; readonly elsewhere: Elsewhere }
  readonly nftables?: { readonly ruleset?: Ruleset; readonly devices: readonly SeenTable[] }
}

export interface Written {
  readonly applied: readonly Applied[]
  readonly known: Known
}

export interface RuleBackend {
  readonly name: string
  /** How this backend's rule tool fails, as the seam is told with every call of it. */
  readonly classify: Classify
  /** The text apply sends into a namespace holding none of our rules: exactly what `plan` prints. Pure. */
  render(plan: Plan): string
  /** Brings the kernel to the plan (writing only what differs); returns what it did and what it read that still holds. */
  apply(plan: Plan): Promise<Written>
  /** Reads what drift compares with the plan, reusing what apply already knows. */
  read(plan: Plan, known?: Known): Promise<Reads>
  /** Removes everything of ours; returns one line per scope saying what went. */
  clean(plan: Plan): Promise<string[]>
}
