// Reads iptables-save output back into our own state. Only the nat table holds rules of ours; counters and
// comments (header lines with dates) are dropped because they change without anyone touching the rules.

import { EnvironmentError } from '../../errors.js'
import { hasOwnedComment, isOwnedChain } from '../../plan/owned.js'
import { OWNED_JUMPS, type NatState } from './render-iptables.js'
import { parseSave, type SavedTable } from '../../path/from-iptables.js'

const chainOf = (line: string): string => line.split(' ')[1] ?? ''

/** parseNatTable extracts the nat table from iptables-save text; empty when there is none. Pure. */
export const parseNatTable = (text: string): SavedTable => parseSave(text).get('nat') ?? { chains: [], rules: [] }

/** ownedState picks out what is ours: our chains' rules and our jumps into them, matched exactly. Pure. */
export const ownedState = (table: SavedTable): NatState => {
  const chains = new Map<string, string[]>(table.chains.filter(isOwnedChain).map(name => [name, []]))
  const jumps: string[] = []
  for (const line of table.rules) {
    const ownChain = chains.get(chainOf(line))
    if (ownChain) ownChain.push(line)
    else if (OWNED_JUMPS.has(line)) jumps.push(line)
  }
  return { chains, jumps }
}

/**
 * refuseForeignNames throws when a chain with one of our names is someone else's: no jump of ours leads to it and
 * it holds a rule without our comment. Taking it over would change another tool's rules. Pure.
 */
export const refuseForeignNames = (state: NatState, where: string): void => {
  for (const [name, rules] of state.chains) {
    const jumpedTo = state.jumps.some(j => j.endsWith(` -j ${name}`))
    const foreign = rules.find(r => !hasOwnedComment(r))
    if (!jumpedTo && foreign !== undefined) {
      throw new EnvironmentError(
        `${where}: chain ${name} has our name but is not ours (no jump of ours leads to it, and it holds "${foreign}"): rename or remove it; nothing was changed`,
      )
    }
  }
}

/** Rules that are not ours but jump into one of our chains: clean cannot remove the chain while they exist. Pure. */
export const foreignJumpsInto = (table: SavedTable, state: NatState): string[] =>
  table.rules.filter(
    line =>
      !state.chains.has(chainOf(line)) &&
      !OWNED_JUMPS.has(line) &&
      [...state.chains.keys()].some(name => / (?:-j|-g) (\S+)/.exec(line)?.[1] === name),
  )
