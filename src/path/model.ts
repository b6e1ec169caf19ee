// A rule as the whole-path check sees it, whichever tool printed it: what it can match (only what we can reason
// about; a match we do not understand is left out, which makes the rule match more, never less) and what it does to
// a packet. iptables-save text, `nft list ruleset` text, tc filters and XDP programs are all read into this model.

import type { Cidr, Family, PortRange } from '../settings/types.js'

/**
 * Where a chain sees packets. `ingress` (nft netdev and inet ingress chains, tc ingress filters, XDP) comes before
 * prerouting for what arrives on a device; `egress` (nft netdev egress chains, tc egress filters) after everything
 * for what leaves by one. Both see a device's packets: those of `lo` include every connection we redirect locally.
 */
export type Hook = DeviceHook | IpHook
/** The hooks of the IP stack where our own rules run. */
export type IpHook = 'prerouting' | 'output'
export type DeviceHook = 'ingress' | 'egress'

export interface Conditions {
  /** 'other': the rule provably matches only protocols other than TCP. */
  readonly protocol: 'tcp' | 'other' | 'any'
  /** The rule matches only these destinations (any of them); undefined: any destination. */
  readonly daddr?: readonly Cidr[]
  readonly saddr?: readonly Cidr[]
  /** The rule matches only these destination ports; undefined: any port. */
  readonly dports?: readonly PortRange[]
  /** The rule matches only sockets of this UID. */
  readonly uid?: number
  /** The rule matches only packets that arrived on (iif) or leave by (oif) the interface of this exact name. */
  readonly iif?: string
  readonly oif?: string
  /** An inet-family nft rule may be limited to one family by `meta nfproto`. */
  readonly family?: Family
}

/** What a rule can do to a TCP packet that it matches. */
export type Effect =
  /** ends the chain with an accept (ACCEPT, or RETURN from a built-in chain) */
  | 'accept'
  /** binds the connection's destination NAT (DNAT, REDIRECT): no later nat rule sees it */
  | 'bind'
  | 'notrack'
  /** moves the packet into another conntrack zone */
  | 'zone'
  /** sets the packet mark, which the mark method's bypass reads */
  | 'mark'
  /** rewrites the destination address or port */
  | 'rewrite'
  /** hands the packet to another local socket before nat */
  | 'tproxy'
  | 'drop'
  /** sends the packet on through another device, or into another device's ingress (nft fwd, tc mirred redirect) */
  | 'forward'
  /** sends a copy of the packet elsewhere (nft dup, tc mirred mirror) */
  | 'duplicate'
  /** runs a BPF program, which can do any of the above: what it does cannot be judged from here */
  | 'opaque'

/** Where evaluation goes after the rule: on, back to the caller, or into another chain of the same table. */
export type Flow = { readonly kind: 'next' } | { readonly kind: 'return' } | { readonly kind: 'jump' | 'goto'; readonly chain: string }

export const NEXT: Flow = { kind: 'next' }

/** Every effect there is: what a rule we cannot read may do. */
export const ANY_EFFECT: readonly Effect[] = ['accept', 'bind', 'notrack', 'zone', 'mark', 'rewrite', 'tproxy', 'forward', 'duplicate']

export interface SeenRule {
  /** The rule as its tool printed it, for the report. */
  readonly text: string
  readonly conditions: Conditions
  /** What it does to a matching packet; 'accept', 'bind' and 'drop' also end the chain. */
  readonly effects: readonly Effect[]
  readonly flow: Flow
  /** With the 'opaque' effect: the BPF programs it runs, by the tag tc and ip print (`id N` where there is none). */
  readonly programs?: readonly string[]
}

export interface SeenChain {
  readonly name: string
  /** Set for base chains: where netfilter calls it, and in which order among the others (lower first). */
  readonly hook?: Hook
  readonly priority?: number
  readonly type?: 'nat' | 'filter' | 'route'
  /** At ingress and egress: the devices it is attached to (one chain may name several). */
  readonly devices?: readonly string[]
  readonly rules: readonly SeenRule[]
}

export interface SeenTable {
  /** Where it lives, as a person would name it: `iptables-legacy ipv4 raw`, `nft inet foo`. */
  readonly where: string
  /** The families whose packets it sees. */
  readonly families: readonly Family[]
  readonly chains: ReadonlyMap<string, SeenChain>
}

/** The hook priorities netfilter gives the iptables tables (and nft's named priorities). */
export const PRIORITY = { raw: -300, conntrack: -200, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 } as const

/** Our nat chains run at this priority in every backend (NF_IP_PRI_NAT_DST; nft's dstnat and output -100). */
export const OUR_NAT_PRIORITY = PRIORITY.dstnat

/** Port ranges as a tool prints them (`80`, `8000:8080` in iptables, `8000-8080` in nft), or undefined if not. */
export const readPortRanges = (items: readonly string[], separator: ':' | '-'): PortRange[] | undefined => {
  const ranges = items.map(item => {
    const [from, to = from] = item.split(separator).map(Number)
    return { from: from ?? NaN, to: to ?? NaN }
  })
  return ranges.every(r => Number.isInteger(r.from) && Number.isInteger(r.to)) ? ranges : undefined
}
