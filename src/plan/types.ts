// The plan as data: which chains we own, in which built-in chain each is hooked, and their rules. No methods, so
// every backend renders the same plan and tests can compare plans structurally.

import type { Service } from '../settings/types.js'
import type { Purpose } from './owned.js'
import type { Cidr, Family, Mark, PortRange } from '../settings/types.js'

export type Hook = 'PREROUTING' | 'OUTPUT'

export type Match =
  | { readonly kind: 'source'; readonly cidr: Cidr }
  | { readonly kind: 'destination'; readonly cidr: Cidr }
  | { readonly kind: 'dport'; readonly ports: readonly PortRange[] }
  | { readonly kind: 'uid-owner'; readonly uid: number }
  | { readonly kind: 'gid-owner'; readonly gid: number }
  | { readonly kind: 'mark'; readonly mark: Mark }
  | { readonly kind: 'cgroup'; readonly classid: number }
  /** The packet arrived on (PREROUTING) or leaves by (OUTPUT) this interface. */
  | { readonly kind: 'in-interface'; readonly name: string }
  | { readonly kind: 'out-interface'; readonly name: string }
  /** The destination is one of the family's listed services: its set of addresses, or of address and port. */
  | { readonly kind: 'service-set'; readonly family: Family; readonly withPorts: boolean }

export type Target = { readonly kind: 'return' } | { readonly kind: 'redirect'; readonly port: number }

export interface Rule {
  /** Why the rule exists; it becomes the rule's comment, so a reader of iptables-save sees it too. */
  readonly purpose: Purpose
  readonly matches: readonly Match[]
  readonly target: Target
}

export interface Chain {
  readonly name: string
  /** The built-in nat chain that jumps to this one (TCP only). */
  readonly hook: Hook
  readonly rules: readonly Rule[]
}

/** The services one capture rule matches: kept in a set, so 10,000 services are still one rule. */
export interface ServiceSet {
  readonly family: Family
  readonly withPorts: boolean
  readonly services: readonly Service[]
}

/**
 * TPROXY's policy routing: packets carrying `mark` look up `table`, whose one route (`local default dev lo`)
 * delivers everything locally. Ours exactly when priority, mark and table all match (see owned.ts).
 */
export interface LocalRouting {
  readonly priority: number
  readonly mark: number
  readonly table: number
}

export interface FamilyPlan {
  readonly family: Family
  readonly chains: readonly Chain[]
  readonly sets: readonly ServiceSet[]
  /** The policy rule and local route TPROXY needs, when inbound capture is by TPROXY. */
  readonly routing: LocalRouting | undefined
}

export interface Plan {
  readonly families: readonly FamilyPlan[]
}
