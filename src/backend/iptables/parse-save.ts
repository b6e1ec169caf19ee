// Reads iptables-save output back into our own state, table by table (raw, mangle and nat can hold rules of ours);
// counters and comments (header lines with dates) are dropped because they change without anyone touching the rules.

import { EnvironmentError } from '../../errors.js'
import { hasOwnedComment, isOwnedChain, TABLES, type Table } from '../../plan/owned.js'
import { OWNED_JUMPS, type OwnedState, type TableState } from './render-iptables.js'
import { parseSave, type SavedTable } from '../../path/from-iptables.js'
import type { Family } from '../../settings/types.js'

const chainOf = (line: string): string => line.split(' ')[1] ?? ''

/** parseOurTables extracts the tables we may own from iptables-save text; a table the text lacks is absent. Pure. */
export const parseOurTables = (text: string): Map<Table, SavedTable> => {
  const all = parseSave(text)
  return new Map(TABLES.flatMap(t => (all.has(t) ? [[t, all.get(t)!] as const] : [])))
}

/** ownedTable picks out what is ours in one table: our chains' rules and our jumps into them, matched exactly. Pure. */
export const ownedTable = (name: Table, table: SavedTable): TableState => {
  const chains = new Map<string, string[]>(table.chains.filter(isOwnedChain).map(chain => [chain, []]))
  const jumps: string[] = []
  const ownJumps = OWNED_JUMPS.get(name)
  for (const line of table.rules) {
    const ownChain = chains.get(chainOf(line))
    if (ownChain) ownChain.push(line)
    else if (ownJumps?.has(line)) jumps.push(line)
  }
  return { chains, jumps }
}

/** ownedState is what is ours in every table of one family's saved text; a table with nothing of ours is absent. Pure. */
export const ownedState = (tables: ReadonlyMap<Table, SavedTable>): OwnedState =>
  new Map(
    [...tables].flatMap(([name, table]) => {
      const state = ownedTable(name, table)
      return state.chains.size + state.jumps.length === 0 ? [] : [[name, state] as const]
    }),
  )

/**
 * refuseForeignNames throws when a chain with one of our names is someone else's: no jump of ours leads to it and
 * it holds a rule without our comment. Taking it over would change another tool's rules. Pure.
 */
export const refuseForeignNames = (state: OwnedState, where: string): void => {
  for (const [table, { chains, jumps }] of state) {
    for (const [name, rules] of chains) {
      const jumpedTo = jumps.some(j => j.endsWith(` -j ${name}`))
      const foreign = rules.find(r => !hasOwnedComment(r))
      if (!jumpedTo && foreign !== undefined) {
        throw new EnvironmentError(
          `${where} ${table}: chain ${name} has our name but is not ours (no jump of ours leads to it, and it holds "${foreign}"): rename or remove it; nothing was changed`,
        )
      }
    }
  }
}

/** Rules that are not ours but jump into one of our chains of that table: clean cannot remove the chain while they exist. Pure. */
export const foreignJumpsInto = (tables: ReadonlyMap<Table, SavedTable>, state: OwnedState): string[] =>
  [...state].flatMap(([name, { chains }]) =>
    (tables.get(name)?.rules ?? []).filter(
      line =>
        !chains.has(chainOf(line)) &&
        !OWNED_JUMPS.get(name)?.has(line) &&
        [...chains.keys()].some(chain => / (?:-j|-g) (\S+)/.exec(line)?.[1] === chain),
    ),
  )

/** ownedIn: our state in one family's saved text, refusing a chain that has our name but is someone else's. Pure. */
export const ownedIn = (backend: { readonly name: string }, family: Family, saved: string): OwnedState => {
  const state = ownedState(parseOurTables(saved))
  refuseForeignNames(state, `${backend.name} ${family}`)
  return state
}
