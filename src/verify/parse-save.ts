// Reads iptables-save output back into our own state. Only the nat table matters; counters and comments
// (header lines with dates) are dropped because they change without anyone touching the rules.

import { isOwnedChain, isOwnedRuleLine } from '../plan/owned.js'
import type { NatState } from '../plan/render-iptables.js'

export interface NatTable {
  /** Every chain the table declares, built-in and user-defined, in printed order. */
  readonly chains: readonly string[]
  /** Every `-A CHAIN ...` line, in printed order. */
  readonly rules: readonly string[]
}

const chainOf = (line: string): string => line.split(' ')[1] ?? ''

/** parseNatTable extracts the nat table from iptables-save text; empty when there is none. Pure. */
export const parseNatTable = (text: string): NatTable => {
  const chains: string[] = []
  const rules: string[] = []
  let inNat = false
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inNat = line === '*nat'
    else if (!inNat || line.startsWith('#')) continue
    else if (line.startsWith(':')) chains.push(line.slice(1).split(' ')[0] ?? '')
    else if (line.startsWith('-A ')) rules.push(line)
  }
  return { chains, rules }
}

/** ownedState picks out what is ours: our chains' rules and the jumps into them. Pure. */
export const ownedState = (table: NatTable): NatState => {
  const chains = new Map<string, string[]>(table.chains.filter(isOwnedChain).map(name => [name, []]))
  const jumps: string[] = []
  for (const line of table.rules) {
    const ownChain = chains.get(chainOf(line))
    if (ownChain) ownChain.push(line)
    else if (isOwnedRuleLine(line)) jumps.push(line)
  }
  return { chains, jumps }
}
