// Reads each family's rules back from the kernel and compares them with the plan.

import { readOwned, type FamilyTarget } from '../backend/apply.js'
import type { IptablesBackend } from '../backend/iptables.js'
import type { Family } from '../settings/types.js'
import { compareState } from './compare.js'

export interface FamilyDrift {
  readonly family: Family
  readonly drift: readonly string[]
}

export const readBackDrift = (backend: IptablesBackend, targets: readonly FamilyTarget[]): Promise<FamilyDrift[]> =>
  Promise.all(targets.map(async ({ family, desired }) => ({ family, drift: compareState(desired, await readOwned(backend, family)) })))

export const describeDrift = (drifts: readonly FamilyDrift[]): string[] =>
  drifts.flatMap(({ family, drift }) => (drift.length === 0 ? [] : [`${family}:`, ...drift.map(line => `  ${line}`)]))
