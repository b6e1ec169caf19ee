// Renders a plan as iptables-restore input. Rules are written in the normal form iptables-save prints back
// (implicit matches made explicit, /32 on hosts, decimal cgroup ids), so the text we send is the text we expect
// to read, and verification is a comparison of strings.

import { formatCidr } from '../../settings/cidr.js'
import type { PortRange } from '../../settings/types.js'
import { commentFor, INBOUND_CHAIN, ipsetName, OUTBOUND_CHAIN } from '../../plan/owned.js'
import type { Chain, FamilyPlan, Match, Rule, Target } from '../../plan/types.js'
import { hex, portRangeText } from '../../text.js'

/** What of ours one family's nat table holds: our chains with their rule lines, and the jumps into them. */
export interface NatState {
  readonly chains: ReadonlyMap<string, readonly string[]>
  readonly jumps: readonly string[]
}

export const EMPTY_STATE: NatState = { chains: new Map(), jumps: [] }

const portText = (r: PortRange): string => portRangeText(r, ':')

const renderMatch = (match: Match): string => {
  switch (match.kind) {
    case 'source':
      return `-s ${formatCidr(match.cidr)}`
    case 'destination':
      return `-d ${formatCidr(match.cidr)}`
    case 'dport': {
      const [only, ...more] = match.ports
      return only && more.length === 0 ? `-m tcp --dport ${portText(only)}` : `-m multiport --dports ${match.ports.map(portText).join(',')}`
    }
    case 'uid-owner':
      return `-m owner --uid-owner ${match.uid}`
    case 'gid-owner':
      return `-m owner --gid-owner ${match.gid}`
    case 'mark':
      return `-m mark --mark ${hex(match.mark.value)}${match.mark.mask === undefined ? '' : `/${hex(match.mark.mask)}`}`
    case 'cgroup':
      return `-m cgroup --cgroup ${match.classid}`
    case 'in-interface':
      return `-i ${match.name}`
    case 'out-interface':
      return `-o ${match.name}`
    case 'service-set':
      return `-m set --match-set ${ipsetName(match.family, match.withPorts)} ${match.withPorts ? 'dst,dst' : 'dst'}`
  }
}

const renderTarget = (target: Target): string => (target.kind === 'return' ? '-j RETURN' : `-j REDIRECT --to-ports ${target.port}`)

// iptables-save prints addresses and interfaces first (in this order), then the protocol, then the other matches
// in the order given.
const FIRST: readonly Match['kind'][] = ['source', 'destination', 'in-interface', 'out-interface']
const isAddress = (m: Match): boolean => FIRST.includes(m.kind)

const renderRule = (chain: string, rule: Rule): string =>
  [
    `-A ${chain}`,
    ...rule.matches
      .filter(isAddress)
      .sort((a, b) => FIRST.indexOf(a.kind) - FIRST.indexOf(b.kind))
      .map(renderMatch),
    '-p tcp',
    ...rule.matches.filter(m => !isAddress(m)).map(renderMatch),
    `-m comment --comment "${commentFor(rule.purpose)}"`,
    renderTarget(rule.target),
  ].join(' ')

const renderJump = (hook: Chain['hook'], chain: string): string =>
  `-A ${hook} -p tcp -m comment --comment "${commentFor(hook === 'PREROUTING' ? 'inbound' : 'outbound')}" -j ${chain}`

/** Our jumps exactly as iptables-save prints them: a rule in a built-in chain is ours only if it is one of these. */
export const JUMPS = { PREROUTING: renderJump('PREROUTING', INBOUND_CHAIN), OUTPUT: renderJump('OUTPUT', OUTBOUND_CHAIN) } as const
export const OWNED_JUMPS: ReadonlySet<string> = new Set(Object.values(JUMPS))

/** The state a family's nat table should hold once the plan is applied. Pure. */
export const renderState = (plan: FamilyPlan): NatState => ({
  chains: new Map(plan.chains.map(c => [c.name, c.rules.map(r => renderRule(c.name, r))])),
  jumps: plan.chains.map(c => renderJump(c.hook, c.name)),
})

const asDelete = (line: string): string => line.replace(/^-A /, '-D ')
const asInsertFirst = (line: string): string => line.replace(/^-A (\S+)/, '-I $1 1')

/**
 * renderTransaction writes the one iptables-restore --noflush payload that turns `existing` into `desired`.
 * Declaring a chain flushes it, so chain contents are replaced inside the transaction, never emptied in between;
 * jumps already in place are kept, missing ones inserted first in their chain, extra or stale ones deleted, so a
 * re-run changes nothing and never leaves a moment without capture. A jump in `misplaced` (a foreign rule ahead
 * of it could end the chain first) is deleted and inserted first again, in the same transaction. Pure.
 */
export const renderTransaction = (desired: NatState, existing: NatState, misplaced: readonly string[] = []): string => {
  const stale = [...existing.chains.keys()].filter(name => !desired.chains.has(name))
  const remaining = [...existing.jumps]
  const inserts: string[] = []
  for (const jump of desired.jumps) {
    const at = remaining.indexOf(jump)
    if (at >= 0 && !misplaced.includes(jump)) remaining.splice(at, 1)
    else inserts.push(asInsertFirst(jump))
  }
  const lines = [
    '*nat',
    ...[...desired.chains.keys(), ...stale].map(name => `:${name} - [0:0]`),
    ...remaining.map(asDelete),
    ...inserts,
    ...[...desired.chains.values()].flat(),
    ...stale.map(name => `-X ${name}`),
    'COMMIT',
  ]
  return `${lines.join('\n')}\n`
}
