// What our capture covers, read from the plan (never re-derived from settings): a foreign rule matters only if it
// can match a TCP packet that one of our capture rules (REDIRECT, or TPROXY for inbound) would take. Everything here errs towards "it can": a
// condition we cannot decide is treated as matching.

import { cidrRange } from '../settings/cidr.js'
import type { Cidr, Family, PortRange } from '../settings/types.js'
import { INBOUND_CHAIN, ISTIO_INBOUND_CHAIN, ISTIO_INBOUND_MANGLE_CHAIN, ISTIO_OUTPUT_CHAIN, OUTBOUND_CHAIN, TPROXY_CHAIN } from '../plan/owned.js'
import type { Chain, FamilyPlan, Match, Rule, Table } from '../plan/types.js'
import { OUR_NAT_PRIORITY, PRIORITY, type Conditions, type IpHook } from './model.js'

const within = (inner: Cidr, outer: Cidr): boolean => {
  if (inner.family !== outer.family || inner.prefix < outer.prefix) return false
  const [a0, a1] = cidrRange(inner)
  const [b0, b1] = cidrRange(outer)
  return b0 <= a0 && a1 <= b1
}

const apart = (a: Cidr, b: Cidr): boolean => {
  if (a.family !== b.family) return true
  const [a0, a1] = cidrRange(a)
  const [b0, b1] = cidrRange(b)
  return a1 < b0 || b1 < a0
}

const portsWithin = (inner: readonly PortRange[], outer: readonly PortRange[]): boolean =>
  inner.every(r => outer.some(o => o.from <= r.from && r.to <= o.to))

const portsApart = (a: readonly PortRange[], b: readonly PortRange[]): boolean => a.every(r => b.every(o => r.to < o.from || o.to < r.from))

/** Every packet the conditions match is also matched by `m`. */
const implies = (c: Conditions, m: Match): boolean => {
  switch (m.kind) {
    case 'source':
      return c.saddr !== undefined && c.saddr.every(x => within(x, m.cidr))
    case 'destination':
      return c.daddr !== undefined && c.daddr.every(x => within(x, m.cidr))
    case 'dport':
      return c.dports !== undefined && portsWithin(c.dports, m.ports)
    case 'uid-owner':
      return c.uid === m.uid
    case 'in-interface':
      return c.iif === m.name
    case 'out-interface':
      return c.oif === m.name
    case 'sport':
    case 'gid-owner':
    case 'mark':
    case 'cgroup':
    case 'service-set':
    case 'established':
    case 'non-local-source':
    case 'sent-here':
    case 'connmark':
    case 'invalid':
    case 'not':
      return false
  }
}

/** No packet matches both the conditions and `m`. */
const excludes = (c: Conditions, m: Match, plan: FamilyPlan): boolean => {
  switch (m.kind) {
    case 'source':
      return c.saddr !== undefined && c.saddr.every(x => apart(x, m.cidr))
    case 'destination':
      return c.daddr !== undefined && c.daddr.every(x => apart(x, m.cidr))
    case 'dport':
      return c.dports !== undefined && portsApart(c.dports, m.ports)
    case 'uid-owner':
      return c.uid !== undefined && c.uid !== m.uid
    case 'service-set': {
      const set = plan.sets.find(s => s.family === m.family && s.withPorts === m.withPorts)
      return c.daddr !== undefined && set !== undefined && c.daddr.every(x => set.services.every(s => apart(x, s.cidr)))
    }
    case 'in-interface':
      return c.iif !== undefined && c.iif !== m.name
    case 'out-interface':
      return c.oif !== undefined && c.oif !== m.name
    case 'sport':
    case 'gid-owner':
    case 'mark':
    case 'cgroup':
    case 'established':
    case 'non-local-source':
    case 'sent-here':
    case 'connmark':
    case 'invalid':
    case 'not':
      return false
  }
}

/** Addresses of the other family cannot match this family's packets (an inet rule's `ip daddr` is IPv4 only). */
const otherFamily = (cidrs: readonly Cidr[] | undefined, family: Family): boolean => cidrs !== undefined && cidrs.every(c => c.family !== family)

/**
 * canAffect: can a rule with these conditions match a TCP packet of this family that `chain` would redirect?
 * Not if it matches no TCP, or only packets one of our single-match RETURN rules lets go anyway, or none that any
 * of our REDIRECT rules takes. Pure.
 */
export const canAffect = (c: Conditions, family: Family, chain: Chain, plan: FamilyPlan): boolean => {
  if (c.protocol === 'other' || (c.family !== undefined && c.family !== family)) return false
  if (otherFamily(c.daddr, family) || otherFamily(c.saddr, family)) return false
  const returns = chain.rules.filter(r => r.target.kind === 'return')
  if (returns.some(r => r.matches.length === 1 && implies(c, r.matches[0]!))) return false
  const captures: Rule[] = chain.rules.filter(r => captureBy(r) !== undefined)
  return captures.some(r => !r.matches.some(m => excludes(c, m, plan)))
}

/** How a rule of ours captures TCP, if it does: nat REDIRECT, or mangle TPROXY (inbound in TPROXY mode). */
const captureBy = (r: Rule): Capture['by'] | undefined => (r.target.kind === 'redirect' || r.target.kind === 'tproxy' ? r.target.kind : undefined)

/** Where the plan captures TCP at a hook: the chain, by which target, and the priority netfilter runs that table at. */
export interface Capture {
  readonly chain: Chain
  readonly by: 'redirect' | 'tproxy'
  readonly priority: number
}

/** The priority each table of ours runs at, in every backend (nft's named priorities are the iptables tables'). */
const TABLE_PRIORITY: Readonly<Record<Table, number>> = { raw: PRIORITY.raw, mangle: PRIORITY.mangle, nat: OUR_NAT_PRIORITY }

// Inbound is captured by one of these chains, whichever the plan holds (Istio's mode's TPROXY chain first: with
// reroute interfaces its nat chain redirects too); DNS's REDIRECT is not TCP capture.
const CAPTURE_CHAINS: Readonly<Record<IpHook, readonly string[]>> = {
  prerouting: [INBOUND_CHAIN, TPROXY_CHAIN, ISTIO_INBOUND_MANGLE_CHAIN, ISTIO_INBOUND_CHAIN],
  output: [OUTBOUND_CHAIN, ISTIO_OUTPUT_CHAIN],
}

/** The plan's TCP capture at a hook, if it captures anything there. Pure. */
export const capturingChain = (plan: FamilyPlan, hook: IpHook): Capture | undefined => {
  for (const chain of plan.chains.filter(c => CAPTURE_CHAINS[hook].includes(c.name))) {
    const by = chain.rules.map(captureBy).find(b => b !== undefined)
    if (by) return { chain, by, priority: TABLE_PRIORITY[chain.table] }
  }
  return undefined
}
