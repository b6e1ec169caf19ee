// Applies one plan across address families as a unit: each family is one atomic restore, the families run side
// by side, and if any is refused the others are put back as they were, so a pod is never left half protected.

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
 * On a refusal, families that were changed are restored to what they held before, then the refusal is rethrown.
 */
export const applyFamilies = async (
  backend: IptablesBackend,
  targets: readonly FamilyTarget[],
  ipv4Saved?: string,
): Promise<FamilyOutcome[]> => {
  const befores = await Promise.all(targets.map(t => readOwned(backend, t.family, t.family === 'ipv4' ? ipv4Saved : undefined)))
  const changes = targets.map((t, i) => compareState(t.desired, befores[i]!).length > 0)
  const results = await Promise.allSettled(
    targets.map((t, i) => (changes[i] ? backend.restore(t.family, renderTransaction(t.desired, befores[i]!)) : Promise.resolve())),
  )
  const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (refused) {
    const undo = targets.flatMap((t, i) => (changes[i] && results[i]?.status === 'fulfilled' ? [{ t, before: befores[i]! }] : []))
    await Promise.all(undo.map(({ t, before }) => backend.restore(t.family, renderTransaction(before, t.desired))))
    throw refused.reason
  }
  return targets.map((t, i) => ({ family: t.family, changed: changes[i]! }))
}
