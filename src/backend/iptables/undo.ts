// What clean removes and what a refused apply puts back, computed from what was read (the backend's one reader:
// each family's -save text, `ipset save`) and nothing else. Pure: the backend runs the text these return.

import { EnvironmentError } from '../../errors.js'
import { ipsetNextName, OWNED_IPSETS, TABLES, type Table } from '../../plan/owned.js'
import type { Family } from '../../settings/types.js'
import type { SavedTable } from '../../path/from-iptables.js'
import type { IptablesBackend } from './iptables.js'
import { foreignJumpsInto, ownedIn, ownedState, parseOurTables } from './parse-save.js'
import { isOwnedIpset, type SavedSet } from './render-ipset.js'
import { EMPTY_STATE, OWNED_JUMPS, renderTransaction, tableOf, type OwnedState } from './render-iptables.js'

export interface FamilyRemoval {
  readonly family: Family
  readonly chains: number
  readonly jumps: number
  /** The restore that removes them; absent when nothing of ours is there. */
  readonly payload?: string
}

/**
 * removalOf: what clean removes from one family, as read: our chains and our jumps into them. Refuses (throws
 * EnvironmentError, before anything is removed anywhere) a chain with our name that is not ours, and a foreign rule
 * jumping into one of our chains, which would keep it from going. Pure.
 */
export const removalOf = (tool: IptablesBackend['name'], family: Family, saved: string): FamilyRemoval => {
  const existing = ownedIn({ name: tool }, family, saved)
  const blocking = foreignJumpsInto(parseOurTables(saved), existing)
  if (blocking.length > 0) {
    throw new EnvironmentError(
      `${tool} ${family}: rules that are not ours jump into our chains (${blocking.join('; ')}), so they cannot be removed; nothing was changed`,
    )
  }
  const chains = [...existing.values()].reduce((sum, t) => sum + t.chains.size, 0)
  const jumps = [...existing.values()].reduce((sum, t) => sum + t.jumps.length, 0)
  return { family, chains, jumps, ...(chains + jumps > 0 && { payload: renderTransaction(EMPTY_STATE, existing) }) }
}

/** setsOfOurs: the sets clean destroys among those read, by any of our names (an earlier init may have used others than the plan's), ours by type and marker alone. Pure. */
export const setsOfOurs = (sets: ReadonlyMap<string, SavedSet>): string[] =>
  [...OWNED_IPSETS, ...OWNED_IPSETS.map(ipsetNextName)].filter(name => {
    const set = sets.get(name)
    return set !== undefined && isOwnedIpset(set)
  })

/** renderSetRemoval is the `ipset restore` input that destroys `names`; undefined when there are none. Pure. */
export const renderSetRemoval = (names: readonly string[]): string | undefined =>
  names.length === 0 ? undefined : `${names.map(name => `destroy ${name}`).join('\n')}\n`

const chainOf = (line: string): string => line.split(' ')[1] ?? ''

/** Each of our jumps in a table as read, with its 1-based position among every rule of its built-in chain. */
const jumpPositions = (table: Table, saved: SavedTable | undefined): { hook: string; at: number; rule: string }[] => {
  const ours = OWNED_JUMPS.get(table)
  const seen = new Map<string, number>()
  return (saved?.rules ?? []).flatMap(rule => {
    const hook = chainOf(rule)
    const at = (seen.get(hook) ?? 0) + 1
    seen.set(hook, at)
    return ours?.has(rule) ? [{ hook, at, rule }] : []
  })
}

/**
 * rollbackOf is the restore that brings one family back to `before`, the -save text apply read before it wrote, from
 * `now`, what it holds of ours since: our chains as they were, our jumps at the very positions they held among the
 * foreign rules (apply may have moved one ahead of a foreign rule), and chains that were not there removed. Foreign
 * rules are not named: deleting each of our jumps and inserting the old ones at their old positions, in rising
 * order, leaves every foreign rule where it was. Pure.
 */
export const rollbackOf = (before: string, now: OwnedState): string => {
  const saved = parseOurTables(before)
  const was = ownedState(saved)
  const sections = TABLES.filter(t => was.has(t) || now.has(t)).flatMap(table => {
    const [old, current] = [tableOf(was, table), tableOf(now, table)]
    const stale = [...current.chains.keys()].filter(name => !old.chains.has(name))
    return [
      `*${table}`,
      ...[...old.chains.keys(), ...stale].map(name => `:${name} - [0:0]`),
      ...current.jumps.map(j => j.replace(/^-A /, '-D ')),
      ...jumpPositions(table, saved.get(table)).map(({ hook, at, rule }) => rule.replace(`-A ${hook} `, `-I ${hook} ${at} `)),
      ...[...old.chains.values()].flat(),
      ...stale.map(name => `-X ${name}`),
      'COMMIT',
    ]
  })
  return `${sections.join('\n')}\n`
}

/** Whether two reads of one family hold the same of ours: the same chains, and our jumps in the same places among all the rules. Pure. */
export const sameOfOurs = (a: string, b: string): boolean => {
  const ours = (text: string): string => {
    const saved = parseOurTables(text)
    const state = ownedState(saved)
    // Compared as sets: -save prints a table's rules chain by chain, and user chains in an order of its own.
    const byName = <T>(entries: readonly T[], key: (e: T) => string): T[] => [...entries].sort((a, b) => key(a).localeCompare(key(b)))
    return JSON.stringify(
      TABLES.map(t => [
        byName(jumpPositions(t, saved.get(t)), j => `${j.hook} ${String(j.at).padStart(6, '0')}`),
        byName([...tableOf(state, t).chains], ([name]) => name),
      ]),
    )
  }
  return ours(a) === ours(b)
}
