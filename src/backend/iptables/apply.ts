// Applies one plan across address families as a unit: each family is one atomic restore, the families run side
// by side, and if any is refused the others are put back as they were, so a pod is never left half protected.

import { ApplyError } from '../../errors.js'
import { findEscapes, type OwnRules } from '../../path/analyze.js'
import { seenTables } from '../../path/from-iptables.js'
import { capturingChain } from '../../path/scope.js'
import {
  CHAIN_HOMES,
  INBOUND_CHAIN,
  ISTIO_INBOUND_CHAIN,
  ISTIO_INBOUND_MANGLE_CHAIN,
  ISTIO_OUTPUT_CHAIN,
  OUTBOUND_CHAIN,
  TABLES,
  TPROXY_CHAIN,
} from '../../plan/owned.js'
import { JUMPS, renderTransaction, type OwnedState } from './render-iptables.js'
import type { FamilyPlan } from '../../plan/types.js'
import type { Family } from '../../settings/types.js'
import { messageOf } from '../../text.js'
import { compareState } from '../compare.js'
import { ownedIn } from './parse-save.js'
import { rollbackOf, sameOfOurs } from './undo.js'
import type { IptablesBackend } from './iptables.js'

export interface FamilyTarget {
  readonly plan: FamilyPlan
  readonly desired: OwnedState
}

export interface FamilyOutcome {
  readonly family: Family
  readonly changed: boolean
}

// The chains that can capture TCP: nat's REDIRECT chains, and mangle's TPROXY chain for inbound in TPROXY mode
// (ours and Istio's mode's).
const CAPTURE_CHAINS = [INBOUND_CHAIN, OUTBOUND_CHAIN, TPROXY_CHAIN, ISTIO_INBOUND_CHAIN, ISTIO_OUTPUT_CHAIN, ISTIO_INBOUND_MANGLE_CHAIN] as const

/** What of one family's tables is ours, for the whole-path check: our tables, the capture jumps, every jump. */
export const ownRules = (tool: IptablesBackend['name'], family: Family): OwnRules => ({
  tables: TABLES.map(t => `${tool} ${family} ${t}`),
  capture: Object.fromEntries(CAPTURE_CHAINS.map(c => [c, { table: `${tool} ${family} ${CHAIN_HOMES[c].table}`, jump: JUMPS[c] }])),
  jumps: new Set(Object.values(JUMPS)),
})

/** Our jumps that a foreign rule ahead of them could pre-empt: init moves them (all of ours at that hook) back first. */
export const misplacedJumps = (backend: IptablesBackend, plan: FamilyPlan, saved: string): string[] => {
  const own = ownRules(backend.name, plan.family)
  const fixable = findEscapes(plan, seenTables(saved, plan.family, backend.name), own).filter(f => f.fixable)
  const jumps = fixable.flatMap(f => {
    const at = f.hook === 'prerouting' || f.hook === 'output' ? capturingChain(plan, f.hook) : undefined
    const home = at && own.capture[at.chain.name]
    return home ? [home.jump] : []
  })
  return [...new Set(jumps)]
}

/**
 * applyFamilies brings every family to its desired state. A family already exactly right is not touched at all.
 * `prepare` runs before the first write, with the families that will change. On a refusal, families that were
 * changed are restored to what they held before, then the refusal is rethrown; if a restore fails too, the error
 * says so and what state each family is left in.
 */
export const applyFamilies = async (
  backend: IptablesBackend,
  targets: readonly FamilyTarget[],
  read: (family: Family) => Promise<string>,
  prepare: (changing: readonly FamilyTarget[]) => Promise<void> = async () => undefined,
): Promise<FamilyOutcome[]> => {
  const befores = await Promise.all(
    targets.map(async t => {
      const saved = await read(t.plan.family)
      const state = ownedIn(backend, t.plan.family, saved)
      return { saved, state, misplaced: misplacedJumps(backend, t.plan, saved) }
    }),
  )
  const changes = targets.map((t, i) => compareState(t.desired, befores[i]!.state).length > 0 || befores[i]!.misplaced.length > 0)
  await prepare(targets.filter((_, i) => changes[i]))
  const results = await Promise.allSettled(
    targets.map((t, i) =>
      changes[i] ? backend.restore(t.plan.family, renderTransaction(t.desired, befores[i]!.state, befores[i]!.misplaced)) : Promise.resolve(),
    ),
  )
  const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (refused) {
    // iptables commits a payload table by table, so a refused payload of several tables may have changed the
    // tables before the refused one: that family is read again and put back as well, if it changed. A family put
    // back gets exactly what was read before (rollbackOf), our jumps where they were among the foreign rules.
    const sections = (i: number): number => new Set([...targets[i]!.desired.keys(), ...befores[i]!.state.keys()]).size
    const undo = targets.flatMap((t, i) =>
      changes[i] && (results[i]?.status === 'fulfilled' || sections(i) > 1)
        ? [{ t, before: befores[i]!.saved, applied: results[i]?.status === 'fulfilled' }]
        : [],
    )
    const undone = await Promise.allSettled(
      undo.map(async ({ t, before, applied }) => {
        const family = t.plan.family
        if (applied) return backend.restore(family, rollbackOf(before, t.desired))
        const now = await read(family)
        if (!sameOfOurs(before, now)) await backend.restore(family, rollbackOf(before, ownedIn(backend, family, now)))
      }),
    )
    const failed = undo.flatMap(({ t }, i) =>
      undone[i]?.status === 'rejected' ? [{ family: t.plan.family, reason: (undone[i] as PromiseRejectedResult).reason }] : [],
    )
    if (failed.length > 0) {
      const state = targets.map((t, i) => {
        const fail = failed.find(f => f.family === t.plan.family)
        return `${t.plan.family} ${fail ? 'holds the new rules (the rollback failed)' : results[i]?.status === 'rejected' ? 'is unchanged (refused)' : changes[i] ? 'was rolled back' : 'was not changed'}`
      })
      throw new ApplyError(
        `${messageOf(refused.reason)}; then rolling back failed too: ${failed.map(f => messageOf(f.reason)).join('; ')}. Now ${state.join(', ')}`,
        {
          cause: refused.reason,
        },
      )
    }
    throw refused.reason
  }
  return targets.map((t, i) => ({ family: t.plan.family, changed: changes[i]! }))
}
