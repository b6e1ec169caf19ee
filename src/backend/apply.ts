// Applies one plan across address families as a unit: each family is one atomic restore, and if a later family is
// refused the earlier ones are put back as they were, so a pod is never left half protected.

import { compareState } from '../verify/compare.js'
import { ownedState, parseNatTable } from '../verify/parse-save.js'
import { renderTransaction, type NatState } from '../plan/render-iptables.js'
import type { Family } from '../settings/types.js'
import type { IptablesBackend } from './iptables.js'

export interface FamilyTarget {
  readonly family: Family
  readonly desired: NatState
}

export interface FamilyOutcome {
  readonly family: Family
  readonly changed: boolean
}

export const readOwned = async (backend: IptablesBackend, family: Family, saved?: string): Promise<NatState> =>
  ownedState(parseNatTable(saved ?? (await backend.save(family))))

/**
 * applyFamilies brings every family to its desired state. A family already exactly right is not touched at all.
 * On a refusal, families already changed are restored to what they held before, then the refusal is rethrown.
 */
export const applyFamilies = async (
  backend: IptablesBackend,
  targets: readonly FamilyTarget[],
  ipv4Saved?: string,
): Promise<FamilyOutcome[]> => {
  const done: { family: Family; before: NatState; after: NatState }[] = []
  const outcomes: FamilyOutcome[] = []
  for (const { family, desired } of targets) {
    const before = await readOwned(backend, family, family === 'ipv4' ? ipv4Saved : undefined)
    const changed = compareState(desired, before).length > 0
    if (changed) {
      try {
        await backend.restore(family, renderTransaction(desired, before))
      } catch (error) {
        for (const undo of done.reverse()) await backend.restore(undo.family, renderTransaction(undo.before, undo.after))
        throw error
      }
      done.push({ family, before, after: desired })
    }
    outcomes.push({ family, changed })
  }
  return outcomes
}
