// Reads `nft list ruleset` text into the whole-path model: every table of the ip, ip6, inet and netdev families,
// each base chain with its hook, priority and (at ingress and egress) devices. As with iptables, only matches that
// can rule a packet out are read, and a statement we do not know is taken to do anything.

import { parseCidr } from '../settings/cidr.js'
import type { Cidr, Family, PortRange } from '../settings/types.js'
import {
  ANY_EFFECT,
  NEXT,
  PRIORITY,
  readPortRanges,
  type Conditions,
  type Effect,
  type Flow,
  type Hook,
  type SeenChain,
  type SeenRule,
  type SeenTable,
} from './model.js'

export interface NftTableText {
  readonly family: string
  readonly name: string
  /** The table's own comment, if any (ours carries one). */
  readonly comment: string | undefined
  /** The table exactly as printed, first line to closing brace. */
  readonly text: string
  readonly chains: readonly NftChainText[]
}

export interface NftChainText {
  readonly name: string
  /** The `type ... hook ... priority ...;` line of a base chain. */
  readonly header: string | undefined
  /** The chain's own comment, if any (a base chain we created carries one). */
  readonly comment?: string
  readonly rules: readonly string[]
}

// `nft list ruleset` notes on stderr, and still succeeds, each table iptables-nft made: "table ip nat is managed by
// iptables-nft, do not touch!". Those tables are read with iptables-nft-save instead.
const MANAGED_NOTE = /table (\S+ \S+) is managed by iptables-nft/g

/** managedTables: the tables (`ip nat`) nft's notes say iptables-nft manages. Pure. */
export const managedTables = (notes: string): Set<string> => new Set([...notes.matchAll(MANAGED_NOTE)].map(m => m[1]!))

/** splitRuleset cuts ruleset text into tables, and each table into chains with their header and rule lines. Pure. */
export const splitRuleset = (text: string): NftTableText[] => {
  const tables: NftTableText[] = []
  let lines: string[] = []
  type Chain = { name: string; header: string | undefined; comment?: string; rules: string[] }
  let table: { family: string; name: string; comment: string | undefined; chains: Chain[] } | undefined
  let chain: Chain | undefined
  for (const line of text.split('\n')) {
    const opened = /^table (\S+) (\S+) \{$/.exec(line)
    if (opened) {
      table = { family: opened[1]!, name: opened[2]!, comment: undefined, chains: [] }
      lines = [line]
      continue
    }
    if (!table) continue
    lines.push(line)
    if (line === '}') {
      tables.push({ ...table, text: `${lines.join('\n')}\n` })
      table = chain = undefined
    } else if (/^\tchain \S+ \{$/.test(line)) {
      chain = { name: line.slice('\tchain '.length, -2), header: undefined, rules: [] }
      table.chains.push(chain)
    } else if (line === '\t}') chain = undefined
    else if (!chain && line.startsWith('\tcomment "')) table.comment = line.slice('\tcomment "'.length, -1)
    else if (chain && line.startsWith('\t\ttype ')) chain.header = line.trim()
    // nft prints a chain's comment first, before its type line.
    else if (chain && chain.header === undefined && chain.rules.length === 0 && line.startsWith('\t\tcomment "'))
      chain.comment = line.trim().slice('comment "'.length, -1)
    else if (chain && line.startsWith('\t\t') && line.trim() !== '') chain.rules.push(line.trim())
  }
  return tables
}

const NAMED_PRIORITY: Readonly<Record<string, number>> = PRIORITY

/** A base chain's priority: a number, or a name with an optional offset (`mangle - 5`). */
export const parsePriority = (text: string): number | undefined => {
  const m = /^(-?\d+)$|^([a-z]+)(?: ([+-]) (\d+))?$/.exec(text.trim())
  if (!m) return undefined
  if (m[1] !== undefined) return Number(m[1])
  const base = NAMED_PRIORITY[m[2]!]
  return base === undefined ? undefined : base + (m[3] === '-' ? -1 : 1) * Number(m[4] ?? 0)
}

const HOOKS: Readonly<Record<string, Hook>> = { ingress: 'ingress', prerouting: 'prerouting', output: 'output', egress: 'egress' }
const TYPES: Readonly<Record<string, SeenChain['type']>> = { nat: 'nat', filter: 'filter', route: 'route' }

// A netdev table sees every frame of its devices, IPv4 and IPv6 alike.
const FAMILIES: Readonly<Record<string, readonly Family[]>> = { ip: ['ipv4'], ip6: ['ipv6'], inet: ['ipv4', 'ipv6'], netdev: ['ipv4', 'ipv6'] }

const OTHER_PROTOCOLS = new Set(['udp', 'udplite', 'sctp', 'dccp', 'icmp', 'icmpv6', 'esp', 'ah', 'comp', 'igmp', 'gre'])

/** A value after a match: one item, or `{ a, b }`; undefined when it is negated, a named set, or a map. */
const valuesAt = (w: readonly string[], i: number): string[] | undefined => {
  const first = w[i]
  if (first === undefined || first === '!=' || first.startsWith('@')) return undefined
  if (first !== '{') return [first]
  const out: string[] = []
  for (let j = i + 1; j < w.length && w[j] !== '}'; j++) out.push(w[j]!.replace(/,$/, ''))
  return out
}

const cidrs = (values: readonly string[]): Cidr[] | undefined => {
  const parsed = values.map(v => parseCidr(v))
  return parsed.every((c): c is Cidr => c !== undefined) ? parsed : undefined
}

const STATEMENTS: readonly [RegExp, Effect][] = [
  [/\b(dnat|redirect|snat|masquerade)\b/, 'bind'],
  [/\bnotrack\b/, 'notrack'],
  [/\bct (?:original |reply )?zone set\b/, 'zone'],
  [/(?<!ct )\bmark set\b/, 'mark'],
  [/\btproxy\b/, 'tproxy'],
  // A raw payload write (`@nh,128,32 set ...`) can change any header field, the destination among them.
  [/\b(?:ip6?|tcp|th) (?:daddr|dport) set\b|@(?:ll|nh|th|ih),\d+,\d+ set\b/, 'rewrite'],
  [/\bfwd to\b/, 'forward'],
  [/\bdup to\b/, 'duplicate'],
  [/ (?:accept|queue)\b/, 'accept'],
  [/ (?:drop|reject)\b/, 'drop'],
]

/** readNftRule reads one rule line of a chain. Pure. */
export const readNftRule = (text: string): SeenRule => {
  // Comments and counters say nothing about packets, and a comment could hold any word.
  const bare = ` ${text.replace(/comment "(?:[^"\\]|\\.)*"/g, '').replace(/counter packets \d+ bytes \d+/g, '')}`
  const w = bare.trim().split(/\s+/)
  let protocol: Conditions['protocol'] = 'any'
  const found: { daddr?: Cidr[]; saddr?: Cidr[]; dports?: PortRange[]; uid?: number; iif?: string; oif?: string; family?: Family } = {}
  for (let i = 0; i < w.length; i++) {
    const [word, next] = [w[i]!, w[i + 1]]
    const proto = (word === 'l4proto' || (word === 'protocol' && w[i - 1] === 'ip') || word === 'nexthdr') && valuesAt(w, i + 1)
    if (proto) protocol = proto.every(p => p !== 'tcp' && p !== '6') ? 'other' : proto.length === 1 ? 'tcp' : 'any'
    else if (OTHER_PROTOCOLS.has(word) && next !== undefined && /^[a-z]/.test(next) && w[i - 1] !== 'l4proto') protocol = 'other'
    else if ((word === 'tcp' || word === 'th') && next === 'dport') {
      // `th` is any transport header; `tcp` also says the protocol.
      if (word === 'tcp') protocol = 'tcp'
      const parsed = readPortRanges(valuesAt(w, i + 2) ?? [], '-')
      if (parsed) found.dports = parsed
    } else if ((word === 'ip' || word === 'ip6') && (next === 'daddr' || next === 'saddr') && w[i + 2] !== 'set') {
      const values = valuesAt(w, i + 2)
      const parsed = values && cidrs(values)
      if (parsed) found[next] = parsed
    } else if (word === 'skuid' && /^\d+$/.test(next ?? '')) found.uid = Number(next)
    else if (word === 'nfproto' && (next === 'ipv4' || next === 'ipv6')) found.family = next
    // One quoted name; a trailing * is nft's wildcard, and a set of names is left out too.
    else if ((word === 'iifname' || word === 'oifname') && /^"[^"*]*"$/.test(next ?? ''))
      found[word === 'iifname' ? 'iif' : 'oif'] = next!.slice(1, -1)
  }
  // In an inet table, any `ip` expression (a match, `ip daddr set`, `dnat ip to`) applies to IPv4 packets only.
  const families = (['ip', 'ip6'] as const).filter(k => w.includes(k))
  if (found.family === undefined && families.length === 1) found.family = families[0] === 'ip' ? 'ipv4' : 'ipv6'
  const effects = STATEMENTS.filter(([pattern]) => pattern.test(bare)).map(([, effect]) => effect)
  const jump = / (jump|goto) (\S+)/.exec(bare)
  const flow: Flow = jump ? { kind: jump[1] as 'jump' | 'goto', chain: jump[2]! } : / return\b/.test(bare) ? { kind: 'return' } : NEXT
  // An xtables target or a verdict map can do anything.
  const unknown = /\bxt target\b|\bvmap\b/.test(bare)
  return { text, conditions: { protocol, ...found }, effects: unknown ? ANY_EFFECT : effects, flow }
}

/** The devices of `device "eth0"` or `devices = { eth0, "lo" }`, as nft prints them. */
const deviceNames = (text: string): string[] =>
  text
    .replace(/^devices? =? ?\{?|\}$/g, '')
    .replace(/^device /, '')
    .split(',')
    .map(d => d.trim().replace(/^"|"$/g, ''))
    .filter(Boolean)

/** seenNftTables turns split tables into the model; tables of other families (arp, bridge) see no hook of ours. */
export const seenNftTables = (tables: readonly NftTableText[]): SeenTable[] =>
  tables.flatMap(table => {
    const families = FAMILIES[table.family]
    if (!families) return []
    const chains = new Map<string, SeenChain>(
      table.chains.map(chain => {
        const header = chain.header && /^type (\w+) hook (\w+)(?: (device "[^"]*"|devices = \{[^}]*\}))? priority ([^;]+);/.exec(chain.header)
        const hook = header ? HOOKS[header[2]!] : undefined
        const priority = header ? parsePriority(header[4]!) : undefined
        const devices = header?.[3] === undefined ? {} : { devices: deviceNames(header[3]) }
        const base = hook && { hook, type: TYPES[header![1]!] ?? 'filter', priority: priority ?? Number.NEGATIVE_INFINITY, ...devices }
        return [chain.name, { name: chain.name, ...base, rules: chain.rules.filter(r => !r.startsWith('policy ')).map(readNftRule) }]
      }),
    )
    return [{ where: `nft ${table.family} ${table.name}`, families, chains }]
  })
