// Compares the state read back from the kernel with the planned one, exactly and in order, and explains any
// difference as a small line diff a person can read in a pod's log.

import { byCodeUnits } from '../order.js'
import { TABLES } from '../plan/owned.js'
import { tableOf, type OwnedState } from './iptables/render-iptables.js'

/** Longest-common-subsequence diff; our chains are tens of lines, so the quadratic table is cheap. */
export const lineDiff = (expected: readonly string[], actual: readonly string[]): string[] => {
  const n = expected.length
  const m = actual.length
  const lcs = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0))
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      const row = lcs[i]!
      row[j] = expected[i] === actual[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, row[j + 1]!)
    }
  }
  const out: string[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] === actual[j]) {
      out.push(`  ${expected[i++]}`)
      j++
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      out.push(`+ ${actual[j++]}`)
    } else {
      out.push(`- ${expected[i++]}`)
    }
  }
  return out
}

const same = (expected: readonly string[], actual: readonly string[]): boolean =>
  expected.length === actual.length && expected.every((line, i) => line === actual[i])

/** diffSection is nothing when the lists are equal, else the title and the full line diff. Pure. */
export const diffSection = (title: string, expected: readonly string[], actual: readonly string[]): string[] =>
  same(expected, actual) ? [] : [title, ...lineDiff(expected, actual)]

/**
 * memberDiff is diffSection for set members, in any order: only the differing ones, sorted. Found by set lookups,
 * since sets run to 100,000 members: a line diff's table would be quadratic, and sorting what the kernel printed
 * cost more than the comparison. Pure.
 */
export const memberDiff = (title: string, expected: readonly string[], actual: readonly string[]): string[] => {
  const have = new Set(actual)
  const missing = expected.filter(m => !have.has(m))
  // Nothing missing and as many as planned (the plan lists no member twice, overlaps being refused, and the kernel
  // prints each once): equal, without a second set.
  if (missing.length === 0 && have.size === expected.length) return []
  const want = new Set(expected)
  const extra = actual.filter(m => !want.has(m))
  if (missing.length === 0 && extra.length === 0) return []
  return [title, ...missing.sort(byCodeUnits).map(m => `- ${m}`), ...extra.sort(byCodeUnits).map(m => `+ ${m}`)]
}

/**
 * compareState returns a readable diff (`-` planned but missing, `+` present but not planned), empty when the
 * kernel holds exactly the plan. Jumps are compared in order at each built-in chain: ours run in the plan's order.
 * Titles name the table, except nat's (where everything of ours lived before other tables held any). Pure.
 */
export const compareState = (desired: OwnedState, live: OwnedState): string[] =>
  TABLES.flatMap(table => {
    const [want, have] = [tableOf(desired, table), tableOf(live, table)]
    const prefix = table === 'nat' ? '' : `${table} `
    const names = [...new Set([...want.chains.keys(), ...have.chains.keys()])]
    const chainDiffs = names.flatMap(name => {
      const rules = want.chains.get(name)
      const found = have.chains.get(name)
      if (!rules) return [`${prefix}chain ${name}: present but not planned`]
      if (!found) return [`${prefix}chain ${name}: missing`]
      return diffSection(`${prefix}chain ${name}:`, rules, found)
    })
    // Grouped by built-in chain (iptables-save prints PREROUTING before OUTPUT), in order within each.
    const byHook = (jumps: readonly string[]): string[] => [...jumps].sort((a, b) => byCodeUnits(a.split(' ')[1] ?? '', b.split(' ')[1] ?? ''))
    return [...diffSection(`${prefix}jumps from built-in chains:`, byHook(want.jumps), byHook(have.jumps)), ...chainDiffs]
  })
