// The plan as data: which chains we own, in which table and built-in chain each is hooked, and their rules. No
// methods, so every backend renders the same plan and tests can compare plans structurally. The model is small on
// purpose (as knftables' is): a table, a hook, rules of one protocol each; a new table's targets (mangle's TPROXY,
// MARK, CONNMARK) and matches (`socket --transparent`) are new kinds here, rendered by each backend's exhaustive switch.

import type { Service } from '../settings/types.js'
import type { ChainName, Hook, Protocol, Purpose, Table } from './owned.js'
import type { Cidr, Family, Mark, PortRange } from '../settings/types.js'

export type { ChainName, Hook, Protocol, Table } from './owned.js'

/** A rule's protocol: one, or every protocol (no protocol match at all). */
export type RuleProtocol = Protocol | 'any'

export type Match =
  | { readonly kind: 'source'; readonly cidr: Cidr }
  | { readonly kind: 'destination'; readonly cidr: Cidr }
  | { readonly kind: 'dport'; readonly ports: readonly PortRange[] }
  | { readonly kind: 'sport'; readonly ports: readonly PortRange[] }
  | { readonly kind: 'uid-owner'; readonly uid: number }
  | { readonly kind: 'gid-owner'; readonly gid: number }
  | { readonly kind: 'mark'; readonly mark: Mark }
  | { readonly kind: 'cgroup'; readonly classid: number }
  /** The packet arrived on (PREROUTING) or leaves by (OUTPUT) this interface. */
  | { readonly kind: 'in-interface'; readonly name: string }
  | { readonly kind: 'out-interface'; readonly name: string }
  /** The destination is one of the family's listed services: its set of addresses, or of address and port. */
  | { readonly kind: 'service-set'; readonly family: Family; readonly withPorts: boolean }
  /** The packet belongs to a connection conntrack has seen both ways (or is related to one). */
  | { readonly kind: 'established' }
  /** The source address is not one of the namespace's own: only a transparent (IP_TRANSPARENT) socket sends so. */
  | { readonly kind: 'non-local-source' }
  /**
   * The packet's connection is one conntrack already confirmed: in PREROUTING on lo, one a socket of this namespace
   * opened (its first packet was confirmed on the way out), never one that came in from outside and was moved onto lo.
   */
  | { readonly kind: 'sent-here' }
  /** The packet's connection carries this mark (all 32 bits). */
  | { readonly kind: 'connmark'; readonly mark: number }
  /** conntrack could not place the packet in any connection (ctstate INVALID). */
  | { readonly kind: 'invalid' }
  /** The inner match does not hold (iptables' `!`, nft's `!=`). */
  | { readonly kind: 'not'; readonly match: NegatableMatch }

/** The matches a rule may negate: those iptables and nft both negate in place. */
export type NegatableMatch = Extract<
  Match,
  { kind: 'source' | 'destination' | 'dport' | 'uid-owner' | 'gid-owner' | 'mark' | 'in-interface' | 'out-interface' }
>

export type Target =
  | { readonly kind: 'return' }
  | { readonly kind: 'redirect'; readonly port: number }
  /** Raw table only: a new connection's original direction is tracked in this zone, its reply direction in the
   * default zone (a later zone rule is ignored). */
  // `original`: the zone applies to the original direction only (ours: a reply to the app's own UDP service keeps the
  // default zone); `both`: Istio's CT --zone, as its rules write it.
  | { readonly kind: 'ct-zone'; readonly zone: number; readonly direction: 'original' | 'both' }
  /** Mangle PREROUTING only: hand the packet to the local socket on `port`, unchanged, and mark it (all 32 bits). */
  | { readonly kind: 'tproxy'; readonly port: number; readonly mark: number }
  /** Mark the packet's connection (all 32 bits). */
  | { readonly kind: 'connmark-set'; readonly mark: number }
  /** Mark the packet (all 32 bits); in mangle OUTPUT the kernel routes it again with the new mark. */
  | { readonly kind: 'mark-set'; readonly mark: number }
  /** Copy the packet's mark to its connection (CONNMARK --save-mark), and back (--restore-mark). */
  | { readonly kind: 'connmark-save' }
  | { readonly kind: 'connmark-restore' }
  /** End the table's processing of the packet at this hook: it goes on to the next table. */
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }

export interface Rule {
  /** Why the rule exists; it becomes the rule's comment, so a reader of iptables-save sees it too. */
  readonly purpose: Purpose
  /** The one protocol the rule matches, or any (Istio's mode has rules for every protocol). */
  readonly protocol: RuleProtocol
  readonly matches: readonly Match[]
  readonly target: Target
}

export interface Chain {
  readonly name: ChainName
  /** The table and built-in chain that jump to this one: always CHAIN_HOMES[name]'s, copied for readers. */
  readonly table: Table
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

/**
 * What of the host the plan depends on besides the families: the destinations each excluded interface's routes
 * in the main table cover (both families), read at init when ISTIO_EXCLUDE_INTERFACES_SCOPE=routes. An interface
 * absent here has no routes: nothing leaving by it is exempt.
 */
export interface PlanFacts {
  readonly interfaceRoutes?: ReadonlyMap<string, readonly Cidr[]>
}
