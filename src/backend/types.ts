// What init, verify and clean need from a backend, whichever it is: apply a plan atomically, read it back and
// compare, and remove everything of ours. Scopes are the units a backend changes at once: each family for
// iptables, the one inet table for nftables.

import type { Plan } from '../plan/types.js'

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

export interface RuleBackend {
  readonly name: string
  apply(plan: Plan): Promise<Applied[]>
  readBack(plan: Plan): Promise<Drift[]>
  /** Removes everything of ours; returns one line per scope saying what went. */
  clean(plan: Plan): Promise<string[]>
}
