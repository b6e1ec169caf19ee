// Renders a plan as one nftables table of our own, `inet sidecar_redirect`: both families in one table, so one
// `nft -f -` transaction changes IPv4 and IPv6 together. The text is written in the form `nft list table` prints
// (sets sorted and merged, marks zero-padded, `meta l4proto tcp` dropped before `tcp dport`), so read-back is a
// comparison of strings, as with iptables-save.

import type { Family, PortRange } from '../../settings/types.js'
import { formatCidr } from '../../settings/cidr.js'
import { commentFor, NFT_TABLE, NFT_TABLE_COMMENT, nftSetName, type ChainName } from '../../plan/owned.js'
import type { FamilyPlan, Match, Plan, Rule, RuleProtocol, ServiceSet, Target } from '../../plan/types.js'
import { portRangeText } from '../../text.js'

// Each chain of the plan is a base chain of our table, at its hook and a priority that puts it where the iptables
// backends' jump puts it. The capture chains are at OUR_NAT_PRIORITY (-100), which the whole-path check compares
// foreign chains with; nft prints the name `dstnat` for it at prerouting only. Two chains of ours at one nat hook
// run in priority order, and an accept (a return from a base chain) lets the next one run, as a RETURN from one
// of our iptables chains lets the next jump run; the first that binds a connection decides it. Raw chains run at
// raw (-300), before conntrack; mangle chains run at mangle (-150), `type route` at output (a changed mark
// re-routes the packet), `type filter` at prerouting.
// How the families' rules of one chain merge into the inet chain: ours put every bypass first (each family's chain
// is bypasses, then captures); Istio's mode keeps each family's order exactly (its captures and bypasses interleave).
type Merge = 'bypasses-first' | 'in-order'
const BASE_CHAINS: Record<ChainName, { readonly chain: string; readonly header: string; readonly merge: Merge }> = {
  SIDECAR_DNS_ZONE_OUT: { chain: 'dns_zone_output', header: 'type filter hook output priority raw; policy accept;', merge: 'bypasses-first' },
  SIDECAR_TPROXY: { chain: 'tproxy_prerouting', header: 'type filter hook prerouting priority mangle; policy accept;', merge: 'bypasses-first' },
  SIDECAR_TPROXY_MARK: { chain: 'tproxy_output', header: 'type route hook output priority mangle; policy accept;', merge: 'bypasses-first' },
  SIDECAR_INBOUND: { chain: 'prerouting', header: 'type nat hook prerouting priority dstnat; policy accept;', merge: 'bypasses-first' },
  SIDECAR_DNS: { chain: 'dns_output', header: 'type nat hook output priority -101; policy accept;', merge: 'bypasses-first' },
  SIDECAR_OUTBOUND: { chain: 'output', header: 'type nat hook output priority -100; policy accept;', merge: 'bypasses-first' },
  ISTIO_INBOUND_DNS: { chain: 'istio_inbound_dns', header: 'type filter hook prerouting priority raw; policy accept;', merge: 'in-order' },
  ISTIO_OUTPUT_DNS: { chain: 'istio_output_dns', header: 'type filter hook output priority raw; policy accept;', merge: 'in-order' },
  ISTIO_INBOUND_MANGLE: { chain: 'istio_inbound_mangle', header: 'type filter hook prerouting priority mangle; policy accept;', merge: 'in-order' },
  ISTIO_OUTPUT_MANGLE: { chain: 'istio_output_mangle', header: 'type route hook output priority mangle; policy accept;', merge: 'in-order' },
  ISTIO_INBOUND: { chain: 'istio_inbound', header: 'type nat hook prerouting priority dstnat; policy accept;', merge: 'in-order' },
  ISTIO_OUTPUT: { chain: 'istio_output', header: 'type nat hook output priority -100; policy accept;', merge: 'in-order' },
}

const hex8 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`

/** Sorted, with overlapping and adjacent ranges merged: nft prints an anonymous set that way. */
const normalizePorts = (ports: readonly PortRange[]): PortRange[] => {
  const merged: PortRange[] = []
  for (const r of [...ports].sort((a, b) => a.from - b.from)) {
    const last = merged[merged.length - 1]
    if (last && r.from <= last.to + 1) merged[merged.length - 1] = { from: last.from, to: Math.max(last.to, r.to) }
    else merged.push({ ...r })
  }
  return merged
}

const portText = (ports: readonly PortRange[]): string => {
  const items = normalizePorts(ports).map(r => portRangeText(r, '-'))
  return items.length === 1 ? `${items[0]}` : `{ ${items.join(', ')} }`
}

const addressKeyword = (family: Family): string => (family === 'ipv4' ? 'ip' : 'ip6')

// A port match names the rule's protocol (`tcp dport`); the plan never puts one on a rule of every protocol.
const ported = (protocol: RuleProtocol, what: string): string => {
  if (protocol === 'any') throw new Error(`a port match (${what}) on a rule of every protocol`)
  return `${protocol} ${what}`
}

// nft negates a comparison in place: `ip daddr != 127.0.0.1`, `meta skuid != 1337`.
const renderMatch = (match: Match, protocol: RuleProtocol, op = ''): string => {
  switch (match.kind) {
    case 'source':
      return `${addressKeyword(match.cidr.family)} saddr ${op}${cidrText(match.cidr)}`
    case 'destination':
      return `${addressKeyword(match.cidr.family)} daddr ${op}${cidrText(match.cidr)}`
    case 'dport':
      return `${ported(protocol, 'dport')} ${op}${portText(match.ports)}`
    case 'sport':
      return `${ported(protocol, 'sport')} ${op}${portText(match.ports)}`
    case 'uid-owner':
      return `meta skuid ${op}${match.uid}`
    case 'gid-owner':
      return `meta skgid ${op}${match.gid}`
    case 'mark':
      return match.mark.mask === undefined
        ? `meta mark ${op}${hex8(match.mark.value)}`
        : `meta mark & ${hex8(match.mark.mask)} ${op === '' ? '==' : '!='} ${hex8(match.mark.value)}`
    case 'cgroup':
      return `meta cgroup ${match.classid}`
    case 'in-interface':
      return `iifname ${op}"${match.name}"`
    case 'out-interface':
      return `oifname ${op}"${match.name}"`
    case 'service-set':
      return `${addressKeyword(match.family)} daddr${match.withPorts ? ` . ${protocol} dport` : ''} @${nftSetName(match.family, match.withPorts)}`
    case 'established':
      return 'ct state established,related'
    case 'sent-here':
      return 'ct status confirmed'
    case 'non-local-source':
      return 'fib saddr type != local'
    case 'connmark':
      return `ct mark ${hex8(match.mark)}`
    case 'invalid':
      return 'ct state invalid'
    case 'not':
      return renderMatch(match.match, protocol, '!= ')
  }
}

// nft prints a host address without its /32 or /128.
const cidrText = (cidr: { family: Family; address: string; prefix: number }): string =>
  cidr.prefix === (cidr.family === 'ipv4' ? 32 : 128) ? cidr.address : formatCidr(cidr)

// A tproxy in a rule that matches an address must name that address's family (nft refuses it otherwise).
const renderTarget = (target: Target, family: Family | undefined): string => {
  switch (target.kind) {
    case 'return':
      return 'return'
    case 'redirect':
      return `redirect to :${target.port}`
    case 'ct-zone':
      return `ct ${target.direction === 'original' ? 'original ' : ''}zone set ${target.zone}`
    // An inet table's tproxy needs no family for a port alone; it does not end the rule, so accept does.
    case 'tproxy':
      return `tproxy ${family === undefined ? '' : `${addressKeyword(family)} `}to :${target.port} meta mark set ${hex8(target.mark)} accept`
    case 'connmark-set':
      return `ct mark set ${hex8(target.mark)}`
    case 'mark-set':
      return `meta mark set ${hex8(target.mark)}`
    case 'connmark-save':
      return 'ct mark set meta mark'
    case 'connmark-restore':
      return 'meta mark set ct mark'
    case 'accept':
      return 'accept'
    case 'drop':
      return 'drop'
  }
}

const isPortMatch = (m: Match): boolean =>
  m.kind === 'dport' || m.kind === 'sport' || (m.kind === 'service-set' && m.withPorts) || (m.kind === 'not' && isPortMatch(m.match))

/**
 * One rule line. A port match (`udp dport`) already implies its protocol; every other rule of one protocol says
 * `meta l4proto` first. `only` limits a rule without an address of its own to one family of the inet table.
 */
const renderNftRule = (rule: Rule, only?: Family): string => {
  const matches = rule.matches.map(m => renderMatch(m, rule.protocol))
  const l4 = rule.protocol === 'any' || rule.matches.some(isPortMatch) ? [] : [`meta l4proto ${rule.protocol}`]
  const address = rule.matches.map(m => (m.kind === 'not' ? m.match : m)).find(m => m.kind === 'source' || m.kind === 'destination')
  const family = address?.kind === 'source' || address?.kind === 'destination' ? address.cidr.family : undefined
  return [
    ...(only ? [`meta nfproto ${only}`] : []),
    ...l4,
    ...matches,
    renderTarget(rule.target, family),
    `comment "${commentFor(rule.purpose)}"`,
  ].join(' ')
}

/**
 * renderNftTable is the table exactly as `nft list table inet sidecar_redirect` prints it. The plan's families
 * are merged chain by chain; a family left out (IPv6 with ISTIO_IPV6=false or no IPv6) is let through untouched
 * by a first rule. Pure.
 */
export const renderNftTable = (plan: Plan): string => {
  const families = plan.families.map(f => f.family)
  const skip = (['ipv4', 'ipv6'] as const).filter(f => !families.includes(f))
  const names = [...new Set(plan.families.flatMap(f => f.chains.map(c => c.name)))]
  const chains = names.map(name => {
    const { chain, header, merge } = BASE_CHAINS[name]
    const lines = [
      ...skip.map(f => `meta nfproto ${f} return comment "${commentFor(`leave-${f}-alone`)}"`),
      ...(merge === 'in-order' ? mergeInOrder(plan.families, name) : mergeBypassesFirst(plan.families, name)),
    ]
    return [`\tchain ${chain} {`, `\t\t${header}`, ...lines.map(l => `\t\t${l}`), '\t}'].join('\n')
  })
  const sets = plan.families.flatMap(f => f.sets).map(renderNftSet)
  return `table inet ${NFT_TABLE} {\n\tcomment "${NFT_TABLE_COMMENT}"\n${[...sets, ...chains].join('\n\n')}\n}\n`
}

const rulesOf = (plan: FamilyPlan, name: ChainName): readonly Rule[] => plan.chains.filter(c => c.name === name).flatMap(c => c.rules)

// Each family's chain is its bypasses, then its captures: merged, every bypass of both families must still come
// before any capture. A rule without an address (the same in both) is written once. A zone rule is neither.
const mergeBypassesFirst = (families: readonly FamilyPlan[], name: ChainName): string[] => {
  const rules = families.flatMap(f => rulesOf(f, name))
  const ordered = [...rules.filter(r => r.target.kind === 'return'), ...rules.filter(r => r.target.kind !== 'return')]
  const seen = new Set<string>()
  return ordered.map(r => renderNftRule(r)).filter(line => !seen.has(line) && seen.add(line))
}

const ADDRESS_KINDS: ReadonlySet<Match['kind']> = new Set(['source', 'destination'])
const hasAddress = (r: Rule): boolean => r.matches.some(m => ADDRESS_KINDS.has(m.kind === 'not' ? m.match.kind : m.kind))

/**
 * Both families' rules of one chain, each family's in its own order: a rule both have (same text, no address) is
 * written once, where both orders allow (a longest common subsequence); a rule only one family has keeps its
 * address, or says its family (`meta nfproto`) when it has none, so the other family's packets never meet it.
 */
const mergeInOrder = (families: readonly FamilyPlan[], name: ChainName): string[] => {
  const [first, second] = families.map(f => rulesOf(f, name).map(rule => ({ rule, family: f.family, text: renderNftRule(rule) })))
  if (!first || !second) return (first ?? []).map(r => r.text)
  const shared = (a: (typeof first)[number], b: (typeof first)[number]): boolean => a.text === b.text && !hasAddress(a.rule)
  const n = first.length
  const m = second.length
  const lcs = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0))
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) lcs[i]![j] = shared(first[i]!, second[j]!) ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!)
  const own = (r: (typeof first)[number]): string => (hasAddress(r.rule) ? r.text : renderNftRule(r.rule, r.family))
  const lines: string[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && shared(first[i]!, second[j]!) && lcs[i]![j] === lcs[i + 1]![j + 1]! + 1) {
      lines.push(first[i]!.text)
      i++
      j++
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) lines.push(own(first[i++]!))
    else lines.push(own(second[j++]!))
  }
  return lines
}

/** A set element as nft prints it: `198.18.0.0/16`, `198.18.0.10 . 443`, `[...] . 8000-8080`. */
export const nftElement = (s: ServiceSet['services'][number]): string => {
  const address = cidrText(s.cidr)
  if (!s.ports) return address
  return `${address} . ${portRangeText(s.ports, '-')}`
}

const renderNftSet = (set: ServiceSet): string => {
  const type = `${set.family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr'}${set.withPorts ? ' . inet_service' : ''}`
  const elements = set.services.length === 0 ? [] : [`\t\telements = { ${set.services.map(nftElement).join(', ')} }`]
  return [`\tset ${nftSetName(set.family, set.withPorts)} {`, `\t\ttype ${type}`, '\t\tflags interval', ...elements, '\t}'].join('\n')
}

/**
 * The one transaction that replaces our table whole (creating it first, so the delete cannot fail): the first apply
 * and clean. Pure.
 */
export const renderNftTransaction = (table: string | undefined): string =>
  `table inet ${NFT_TABLE} {}\ndelete table inet ${NFT_TABLE}\n${table ?? ''}`

/** A block of a listed table (`set services4`, `chain output`, `map x`) and the lines that define it, not its rules or elements. */
interface Block {
  readonly kind: string
  readonly name: string
  readonly head: string
}

// A set's own lines are all but its elements (continued on deeper lines); a chain's are its hook, policy and comment.
const CHAIN_HEAD = /^\t\t(?:type|policy|comment|devices|flags) /
const isHead = (kind: string, line: string): boolean =>
  /^\t\t\S/.test(line) && (kind === 'chain' ? CHAIN_HEAD.test(line) : !line.startsWith('\t\telements = '))

/** A table as `nft list table` prints it: its own lines (comment, flags) and its blocks in listed order. Pure. */
const outline = (table: string): { own: string[]; blocks: Block[] } => {
  const own: string[] = []
  const blocks: { kind: string; name: string; head: string[] }[] = []
  let block: (typeof blocks)[number] | undefined
  for (const line of table.split('\n').slice(1)) {
    const open = /^\t(\S.*) (\S+) \{$/.exec(line)
    if (open) {
      block = { kind: open[1] ?? '', name: open[2] ?? '', head: [] }
      blocks.push(block)
    } else if (line === '\t}') block = undefined
    else if (block) {
      if (isHead(block.kind, line)) block.head.push(line)
    } else if (/^\t\S/.test(line)) own.push(line)
  }
  return { own, blocks: blocks.map(b => ({ ...b, head: b.head.join('\n') })) }
}

const key = (b: Block): string => `${b.kind} ${b.name}`

/**
 * renderNftUpdate is the one transaction that turns our table as listed (`live`) into `table` without replacing it:
 * every chain's rules and every set's elements are flushed and written again, chains and sets the plan no longer
 * has are deleted, new ones added. A base chain that stays is never unregistered, so no connection can pass a nat
 * hook while neither the old rules nor the new ones are there (replaced whole, a connection whose first packet met
 * the new chain before the commit and the old one after it went uncaptured: a null NAT binding, for good).
 * Undefined when only a whole replace can give `table` exactly: a kept chain's hook, priority, type or policy, or a
 * set's type or flags, changes (the kernel cannot change them in place); the table's own lines differ; something
 * other than a set or chain is there; or the listing would order them otherwise (nft lists sets, then chains, each
 * in the order they were made, and the comparison with the plan is exact). Pure.
 */
export const renderNftUpdate = (table: string, live: string): string | undefined => {
  const [want, have] = [outline(table), outline(live)]
  if (want.own.join('\n') !== have.own.join('\n')) return undefined
  const wanted = new Map(want.blocks.map(b => [key(b), b]))
  const kept = have.blocks.filter(b => wanted.has(key(b)))
  const stale = have.blocks.filter(b => !wanted.has(key(b)))
  if (kept.some(b => wanted.get(key(b))?.head !== b.head) || stale.some(b => b.kind !== 'set' && b.kind !== 'chain')) return undefined
  const keptKeys = new Set(kept.map(key))
  const listed = [...kept, ...want.blocks.filter(b => !keptKeys.has(key(b)))]
  const order = (blocks: readonly Block[], kind: string): string =>
    blocks
      .filter(b => b.kind === kind)
      .map(key)
      .join('\n')
  if (['set', 'chain'].some(kind => order(listed, kind) !== order(want.blocks, kind))) return undefined
  return [
    `flush table inet ${NFT_TABLE}`,
    ...kept.filter(b => b.kind === 'set').map(b => `flush set inet ${NFT_TABLE} ${b.name}`),
    ...[...stale.filter(b => b.kind === 'chain'), ...stale.filter(b => b.kind === 'set')].map(b => `delete ${b.kind} inet ${NFT_TABLE} ${b.name}`),
    table,
  ].join('\n')
}

/** The transaction apply sends: in place when our table is there and can be changed so, else a whole replace. Pure. */
export const renderNftApply = (table: string, live: string | undefined): string =>
  (live === undefined ? undefined : renderNftUpdate(table, live)) ?? renderNftTransaction(table)
