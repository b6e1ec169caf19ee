// What our planned chain does with one concrete packet of the live probe: the probe reads the plan, never the
// settings, to know where each of its connections must land. Every match kind is decided for the packet; the
// switch is exhaustive, so a new kind cannot be forgotten here.

import { OUTBOUND_CHAIN } from '../plan/owned.js'
import type { Chain, FamilyPlan, Match, Protocol, Rule } from '../plan/types.js'
import { parseCidr } from '../settings/cidr.js'
import type { Cidr } from '../settings/types.js'

/** A probe connection as the OUTPUT chain sees it: it leaves by lo, to one of the pod's own addresses. */
export interface ProbePacket {
  readonly saddr: string
  readonly daddr: string
  readonly dport: number
  readonly uid: number
  readonly gid: number
  readonly mark: number
  readonly classid: number
  readonly outInterface: string
  /** TCP unless said otherwise. */
  readonly protocol?: Protocol
}

export type Fate = { readonly kind: 'redirect'; readonly port: number } | { readonly kind: 'return'; readonly rule: Rule } | { readonly kind: 'pass' }

const inCidr = (address: string, cidr: Cidr): boolean => {
  const host = parseCidr(`${address}/${cidr.prefix}`)
  return host !== undefined && host.family === cidr.family && host.address === cidr.address
}

const matches = (m: Match, p: ProbePacket, plan: FamilyPlan): boolean => {
  switch (m.kind) {
    case 'source':
      return inCidr(p.saddr, m.cidr)
    case 'destination':
      return inCidr(p.daddr, m.cidr)
    case 'dport':
      return m.ports.some(r => p.dport >= r.from && p.dport <= r.to)
    case 'sport':
      return false // a probe connection's source port is the kernel's choice; no capture rule of ours reads it
    case 'uid-owner':
      return p.uid === m.uid
    case 'gid-owner':
      return p.gid === m.gid
    case 'mark':
      return (p.mark & (m.mark.mask ?? 0xffffffff)) >>> 0 === m.mark.value
    case 'cgroup':
      return p.classid === m.classid
    case 'in-interface':
      return false // an OUTPUT packet has no input interface
    case 'out-interface':
      return p.outInterface === m.name
    case 'service-set': {
      const set = plan.sets.find(s => s.family === m.family && s.withPorts === m.withPorts)
      return set?.services.some(s => inCidr(p.daddr, s.cidr) && (!s.ports || (p.dport >= s.ports.from && p.dport <= s.ports.to))) ?? false
    }
    // TPROXY's matches, in mangle chains the probe's walk of SIDECAR_OUTBOUND never meets.
    case 'established':
    case 'non-local-source':
    case 'sent-here':
    case 'connmark':
    case 'invalid':
      return false
    case 'not':
      return !matches(m.match, p, plan)
  }
}

const ruleMatches = (r: Rule, p: ProbePacket, plan: FamilyPlan): boolean =>
  (r.protocol === 'any' || r.protocol === (p.protocol ?? 'tcp')) && r.matches.every(m => matches(m, p, plan))

/** fateOf walks the plan's OUTPUT chain for the packet: the first rule whose matches all hold decides. Pure. */
export const fateOf = (plan: FamilyPlan, packet: ProbePacket): Fate => {
  const chain: Chain | undefined = plan.chains.find(c => c.name === OUTBOUND_CHAIN)
  // A zone rule does not decide (the walk goes on past it); only RETURN and REDIRECT do.
  const rule = chain?.rules.find(r => r.target.kind !== 'ct-zone' && ruleMatches(r, packet, plan))
  if (!rule) return { kind: 'pass' }
  return rule.target.kind === 'redirect' ? { kind: 'redirect', port: rule.target.port } : { kind: 'return', rule }
}

/**
 * natOutputFate is where nat OUTPUT sends a new connection under the plan: its chains there run in the plan's order,
 * a RETURN ends only its own chain, and the first REDIRECT decides. Pure.
 */
export const natOutputFate = (plan: FamilyPlan, packet: ProbePacket): Fate => {
  for (const chain of plan.chains.filter(c => c.table === 'nat' && c.hook === 'OUTPUT')) {
    const rule = chain.rules.find(r => ruleMatches(r, packet, plan))
    if (rule?.target.kind === 'redirect') return { kind: 'redirect', port: rule.target.port }
  }
  return { kind: 'pass' }
}

/** The identity kinds a RETURN rule can exempt the proxy by; the probe makes a socket with each. */
export type IdentityMatch = Extract<Match, { kind: 'uid-owner' | 'gid-owner' | 'mark' | 'cgroup' }>

const IDENTITY_KINDS: ReadonlySet<Match['kind']> = new Set(['uid-owner', 'gid-owner', 'mark', 'cgroup'])

/** The plan's identity bypasses: RETURN rules in OUTPUT whose one match is an identity. Pure. */
export const identityBypasses = (plan: FamilyPlan): { readonly rule: Rule; readonly match: IdentityMatch }[] =>
  (plan.chains.find(c => c.name === OUTBOUND_CHAIN)?.rules ?? []).flatMap(rule => {
    const [only, ...more] = rule.matches
    return rule.target.kind === 'return' && only && more.length === 0 && IDENTITY_KINDS.has(only.kind) ? [{ rule, match: only as IdentityMatch }] : []
  })
