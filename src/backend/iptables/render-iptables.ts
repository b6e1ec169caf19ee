// Renders a plan as iptables-restore input. Rules are written in the normal form iptables-save prints back
// (implicit matches made explicit, /32 on hosts, decimal cgroup ids), so the text we send is the text we expect
// to read, and verification is a comparison of strings.

import { formatCidr } from '../../settings/cidr.js'
import type { Family, PortRange } from '../../settings/types.js'
import { CHAIN_HOMES, commentFor, ipsetName, TABLES, type ChainName, type Table } from '../../plan/owned.js'
import type { FamilyPlan, Match, Protocol, Rule, RuleProtocol, Target } from '../../plan/types.js'
import { hex, portRangeText } from '../../text.js'

/** What of ours one table holds: our chains with their rule lines, and the jumps into them, in printed order. */
export interface TableState {
  readonly chains: ReadonlyMap<string, readonly string[]>
  readonly jumps: readonly string[]
}

/** What of ours one family holds, by table; a table with nothing of ours is absent. */
export type OwnedState = ReadonlyMap<Table, TableState>

export const EMPTY_STATE: OwnedState = new Map()
const EMPTY_TABLE: TableState = { chains: new Map(), jumps: [] }

/** One table's part of a state; empty when the state has nothing there. */
export const tableOf = (state: OwnedState, table: Table): TableState => state.get(table) ?? EMPTY_TABLE

const portText = (r: PortRange): string => portRangeText(r, ':')

// A port match needs the rule's protocol (`-m tcp`); the plan never puts one on a rule of every protocol.
const portMatch = (protocol: RuleProtocol, option: '--dport' | '--sport', ports: readonly PortRange[], not: string): string => {
  if (protocol === 'any') throw new Error(`a port match (${option}) on a rule of every protocol`)
  const [only, ...more] = ports
  return only && more.length === 0
    ? `-m ${protocol} ${not}${option} ${portText(only)}`
    : `-m multiport ${not}${option}s ${ports.map(portText).join(',')}`
}

// iptables-save prints a negation where the option starts: before `-d`, after `-m owner`.
const renderMatch = (match: Match, protocol: RuleProtocol, not = ''): string => {
  switch (match.kind) {
    case 'source':
      return `${not}-s ${formatCidr(match.cidr)}`
    case 'destination':
      return `${not}-d ${formatCidr(match.cidr)}`
    case 'dport':
      return portMatch(protocol, '--dport', match.ports, not)
    case 'sport':
      return portMatch(protocol, '--sport', match.ports, not)
    case 'uid-owner':
      return `-m owner ${not}--uid-owner ${match.uid}`
    case 'gid-owner':
      return `-m owner ${not}--gid-owner ${match.gid}`
    case 'mark':
      return `-m mark ${not}--mark ${hex(match.mark.value)}${match.mark.mask === undefined ? '' : `/${hex(match.mark.mask)}`}`
    case 'cgroup':
      return `-m cgroup --cgroup ${match.classid}`
    case 'in-interface':
      return `${not}-i ${match.name}`
    case 'out-interface':
      return `${not}-o ${match.name}`
    case 'service-set':
      return `-m set --match-set ${ipsetName(match.family, match.withPorts)} ${match.withPorts ? 'dst,dst' : 'dst'}`
    case 'established':
      return '-m conntrack --ctstate RELATED,ESTABLISHED'
    case 'non-local-source':
      return '-m addrtype ! --src-type LOCAL'
    case 'sent-here':
      return '-m conntrack --ctstatus CONFIRMED'
    case 'connmark':
      return `-m connmark --mark ${hex(match.mark)}`
    case 'invalid':
      return '-m conntrack --ctstate INVALID'
    case 'not':
      return renderMatch(match.match, protocol, '! ')
  }
}

// CONNMARK copies all 32 bits unless told otherwise, and iptables-save says so.
const WHOLE_MASKS = '--nfmask 0xffffffff --ctmask 0xffffffff'

// A mark of all 32 bits, as iptables-save prints every MARK, CONNMARK and TPROXY mark.
const fullMark = (mark: number): string => `${hex(mark)}/0xffffffff`

const renderTarget = (target: Target, family: Family): string => {
  switch (target.kind) {
    case 'return':
      return '-j RETURN'
    case 'redirect':
      return `-j REDIRECT --to-ports ${target.port}`
    case 'ct-zone':
      return `-j CT --zone${target.direction === 'original' ? '-orig' : ''} ${target.zone}`
    case 'tproxy':
      return `-j TPROXY --on-port ${target.port} --on-ip ${family === 'ipv4' ? '0.0.0.0' : '::'} --tproxy-mark ${fullMark(target.mark)}`
    case 'connmark-set':
      return `-j CONNMARK --set-xmark ${fullMark(target.mark)}`
    case 'mark-set':
      return `-j MARK --set-xmark ${fullMark(target.mark)}`
    case 'connmark-save':
      return `-j CONNMARK --save-mark ${WHOLE_MASKS}`
    case 'connmark-restore':
      return `-j CONNMARK --restore-mark ${WHOLE_MASKS}`
    case 'accept':
      return '-j ACCEPT'
    case 'drop':
      return '-j DROP'
  }
}

// iptables-save prints addresses and interfaces first (in this order), then the protocol, then the other matches
// in the order given.
// A negated one sits where it would unnegated.
const FIRST: readonly Match['kind'][] = ['source', 'destination', 'in-interface', 'out-interface']
const kindOf = (m: Match): Match['kind'] => (m.kind === 'not' ? m.match.kind : m.kind)
const isAddress = (m: Match): boolean => FIRST.includes(kindOf(m))

// A family's table holds only that family's packets, so a /0 address match matches every one of them: iptables
// stores it as no match at all and iptables-save prints nothing for it. It is written the way it is printed.
const matchesAll = (m: Match): boolean => (m.kind === 'source' || m.kind === 'destination') && m.cidr.prefix === 0

const renderRule = (chain: string, rule: Rule, family: Family): string =>
  [
    `-A ${chain}`,
    ...rule.matches
      .filter(m => isAddress(m) && !matchesAll(m))
      .sort((a, b) => FIRST.indexOf(kindOf(a)) - FIRST.indexOf(kindOf(b)))
      .map(m => renderMatch(m, rule.protocol)),
    ...(rule.protocol === 'any' ? [] : [`-p ${rule.protocol}`]),
    ...rule.matches.filter(m => !isAddress(m)).map(m => renderMatch(m, rule.protocol)),
    `-m comment --comment "${commentFor(rule.purpose)}"`,
    renderTarget(rule.target, family),
  ].join(' ')

const renderJump = (name: ChainName): string => {
  const home: { hook: string; jump: Rule['purpose']; protocol?: Protocol } = CHAIN_HOMES[name]
  const protocol = home.protocol === undefined ? '' : ` -p ${home.protocol}`
  return `-A ${home.hook}${protocol} -m comment --comment "${commentFor(home.jump)}" -j ${name}`
}

/** Our jumps exactly as iptables-save prints them, by chain: a rule in a built-in chain is ours only if it is one of these. */
export const JUMPS = Object.fromEntries(Object.keys(CHAIN_HOMES).map(name => [name, renderJump(name as ChainName)])) as Record<ChainName, string>

/** Our jumps in each table: the same text in another table is not ours. */
export const OWNED_JUMPS: ReadonlyMap<Table, ReadonlySet<string>> = new Map(
  TABLES.map(table => [table, new Set((Object.keys(CHAIN_HOMES) as ChainName[]).filter(n => CHAIN_HOMES[n].table === table).map(n => JUMPS[n]))]),
)

/** The state a family's tables should hold once the plan is applied; a table the plan does not use is absent. Pure. */
export const renderState = (plan: FamilyPlan): OwnedState =>
  new Map(
    TABLES.flatMap(table => {
      const chains = plan.chains.filter(c => c.table === table)
      if (chains.length === 0) return []
      return [
        [
          table,
          { chains: new Map(chains.map(c => [c.name, c.rules.map(r => renderRule(c.name, r, plan.family))])), jumps: chains.map(c => JUMPS[c.name]) },
        ],
      ]
    }),
  )

const asDelete = (line: string): string => line.replace(/^-A /, '-D ')
const hookOf = (jump: string): string => jump.split(' ')[1] ?? ''

/**
 * One table's section of the transaction. Declaring a chain flushes it, so chain contents are replaced inside the
 * transaction, never emptied in between. At each built-in chain our jumps run in the plan's order, first: when
 * they are all in place, in that order and none is `misplaced`, they are kept; otherwise every jump of ours there
 * is deleted and inserted again at positions 1, 2, ..., in the same transaction. Stale jumps are deleted.
 */
const renderSection = (table: Table, desired: TableState, existing: TableState, misplaced: readonly string[]): string[] => {
  const stale = [...existing.chains.keys()].filter(name => !desired.chains.has(name))
  const deletes = existing.jumps.filter(j => !desired.jumps.includes(j))
  const inserts: string[] = []
  for (const hook of new Set(desired.jumps.map(hookOf))) {
    const want = desired.jumps.filter(j => hookOf(j) === hook)
    const have = existing.jumps.filter(j => want.includes(j))
    const once = have.filter((j, i) => have.indexOf(j) === i)
    if (once.length === want.length && once.every((j, i) => j === want[i]) && !want.some(j => misplaced.includes(j))) {
      // In place: only the copies a race left behind go.
      deletes.push(...have.filter((j, i) => have.indexOf(j) !== i))
    } else {
      deletes.push(...have)
      inserts.push(...want.map((j, i) => j.replace(/^-A (\S+)/, `-I $1 ${i + 1}`)))
    }
  }
  return [
    `*${table}`,
    ...[...desired.chains.keys(), ...stale].map(name => `:${name} - [0:0]`),
    ...deletes.map(asDelete),
    ...inserts,
    ...[...desired.chains.values()].flat(),
    ...stale.map(name => `-X ${name}`),
    'COMMIT',
  ]
}

/**
 * renderTransaction writes the one iptables-restore --noflush payload that turns `existing` into `desired`: a
 * section for each table either holds something of ours in, none for a table neither touches, so a pod without
 * a feature that needs raw or mangle never has those tables created. A re-run changes nothing and never leaves a
 * moment without capture. A jump in `misplaced` (a foreign rule ahead of it could end the chain first) is moved
 * back to the front. Each section commits on its own (iptables commits table by table): apply rolls back a
 * family whose later section was refused. Pure.
 */
export const renderTransaction = (desired: OwnedState, existing: OwnedState, misplaced: readonly string[] = []): string => {
  const lines = TABLES.filter(t => desired.has(t) || existing.has(t)).flatMap(t =>
    renderSection(t, tableOf(desired, t), tableOf(existing, t), misplaced),
  )
  return `${lines.join('\n')}\n`
}
