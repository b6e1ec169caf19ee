// Reads iptables-save text (every table, either variant) into the whole-path model. Only the matches that can
// rule a packet out are read (protocol, addresses, ports, owner, interface); any other match is left out, so a rule is
// taken to match at least what it really matches.

import { parseCidr } from '../settings/cidr.js'
import type { Family } from '../settings/types.js'
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

/** The tables of one iptables-save text: their declared chains and `-A` lines, in printed order. */
export interface SavedTable {
  readonly chains: readonly string[]
  readonly rules: readonly string[]
}

/** parseSave splits iptables-save text by table, dropping comments and counters. Pure. */
export const parseSave = (text: string): Map<string, SavedTable> => {
  const tables = new Map<string, { chains: string[]; rules: string[] }>()
  let current: { chains: string[]; rules: string[] } | undefined
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      current = { chains: [], rules: [] }
      tables.set(line.slice(1), current)
    } else if (!current || line.startsWith('#')) continue
    else if (line.startsWith(':')) current.chains.push(line.slice(1).split(' ')[0] ?? '')
    else if (line.startsWith('-A ')) current.rules.push(line)
  }
  return tables
}

/** Splits a rule line into words, keeping a double-quoted comment (with its \" escapes) as one word. */
export const words = (line: string): string[] => line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []

const NON_TERMINAL = new Set([
  'LOG',
  'NFLOG',
  'TRACE',
  'AUDIT',
  'CLASSIFY',
  'DSCP',
  'TOS',
  'TTL',
  'HL',
  'TCPMSS',
  'CHECKSUM',
  'CONNSECMARK',
  'SECMARK',
  'IDLETIMER',
  'LED',
  'SET',
])

const TARGETS: Readonly<Record<string, readonly Effect[]>> = {
  ACCEPT: ['accept'],
  DROP: ['drop'],
  REJECT: ['drop'],
  DNAT: ['bind'],
  REDIRECT: ['bind'],
  NETMAP: ['bind'],
  SNAT: ['bind'],
  MASQUERADE: ['bind'],
  MARK: ['mark'],
  CONNMARK: ['mark'],
  NOTRACK: ['notrack'],
  TPROXY: ['tproxy'],
  // A queued packet that userspace accepts skips the rest of the chain.
  NFQUEUE: ['accept', 'drop'],
}

const targetOf = (target: string, options: readonly string[], userChains: ReadonlySet<string>): { effects: readonly Effect[]; flow: Flow } => {
  if (target === 'RETURN') return { effects: [], flow: { kind: 'return' } }
  if (userChains.has(target)) return { effects: [], flow: { kind: 'jump', chain: target } }
  if (NON_TERMINAL.has(target)) return { effects: [], flow: NEXT }
  if (target === 'CT') {
    const notrack: Effect[] = options.includes('--notrack') ? ['notrack'] : []
    const zone: Effect[] = options.some(o => o.startsWith('--zone')) ? ['zone'] : []
    return { effects: [...notrack, ...zone], flow: NEXT }
  }
  return { effects: TARGETS[target] ?? ANY_EFFECT, flow: NEXT }
}

/** readRule reads one `-A CHAIN ...` line. Pure. */
export const readRule = (line: string, userChains: ReadonlySet<string>): SeenRule => {
  const w = words(line)
  let protocol: Conditions['protocol'] = 'any'
  const found: { -readonly [K in 'daddr' | 'saddr' | 'dports' | 'uid' | 'iif' | 'oif']?: NonNullable<Conditions[K]> } = {}
  let target: { effects: readonly Effect[]; flow: Flow } = { effects: [], flow: NEXT }
  let negated = false
  for (let i = 2; i < w.length; i++) {
    const word = w[i]!
    const value = w[i + 1] ?? ''
    if (word === '!') {
      negated = true
      continue
    }
    // A negated match still narrows what the rule matches, but leaving it out is always safe.
    const take = !negated
    negated = false
    if (word === '-p' && take) protocol = value === 'tcp' || value === '6' ? 'tcp' : value === 'all' || value === '0' ? 'any' : 'other'
    else if ((word === '-d' || word === '-s') && take) {
      const cidr = parseCidr(value)
      if (cidr) found[word === '-d' ? 'daddr' : 'saddr'] = [cidr]
    } else if ((word === '--dport' || word === '--dports' || word === '--destination-port') && take) {
      const ports = readPortRanges(value.split(','), ':')
      if (ports) found.dports = ports
    } else if (word === '--uid-owner' && take && /^\d+$/.test(value)) found.uid = Number(value)
    // A trailing + is iptables' wildcard: such a rule matches more than one name, so it is left out.
    else if ((word === '-i' || word === '-o') && take && !value.endsWith('+')) found[word === '-i' ? 'iif' : 'oif'] = value
    else if (word === '-g') {
      target = { effects: [], flow: { kind: 'goto', chain: value } }
      break
    } else if (word === '-j') {
      target = targetOf(value, w.slice(i + 2), userChains)
      break
    }
  }
  return { text: line, conditions: { protocol, ...found }, ...target }
}

interface BaseTable {
  readonly priority: number
  readonly chains: Partial<Record<string, { readonly hook: Hook; readonly type: NonNullable<SeenChain['type']> }>>
}

// Where each table's built-in chains sit. INPUT, FORWARD and POSTROUTING see no packet before our capture does.
const BASE_TABLES: Readonly<Record<string, BaseTable>> = {
  raw: { priority: PRIORITY.raw, chains: { PREROUTING: { hook: 'prerouting', type: 'filter' }, OUTPUT: { hook: 'output', type: 'filter' } } },
  mangle: { priority: PRIORITY.mangle, chains: { PREROUTING: { hook: 'prerouting', type: 'filter' }, OUTPUT: { hook: 'output', type: 'route' } } },
  nat: { priority: PRIORITY.dstnat, chains: { PREROUTING: { hook: 'prerouting', type: 'nat' }, OUTPUT: { hook: 'output', type: 'nat' } } },
  filter: { priority: PRIORITY.filter, chains: { OUTPUT: { hook: 'output', type: 'filter' } } },
  security: { priority: PRIORITY.security, chains: { OUTPUT: { hook: 'output', type: 'filter' } } },
}

const BUILT_IN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'])

/** seenTables turns one family's iptables-save text into the model; `tool` names the variant for reports. Pure. */
export const seenTables = (text: string, family: Family, tool: string): SeenTable[] =>
  [...parseSave(text)].map(([name, table]) => {
    const base = BASE_TABLES[name]
    const userChains = new Set(table.chains.filter(c => !BUILT_IN_CHAINS.has(c)))
    const byChain = new Map<string, SeenRule[]>(table.chains.map(c => [c, []]))
    for (const line of table.rules) byChain.get(line.split(' ')[1] ?? '')?.push(readRule(line, userChains))
    const chains = new Map<string, SeenChain>(
      table.chains.map(chain => {
        const hooked = base?.chains[chain]
        return [chain, { name: chain, ...(hooked && base && { ...hooked, priority: base.priority }), rules: byChain.get(chain) ?? [] }]
      }),
    )
    return { where: `${tool} ${family} ${name}`, families: [family], chains }
  })
