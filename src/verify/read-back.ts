// Reads each family's rules back from the kernel and compares them with the plan.

import { readOwned, type FamilyTarget } from '../backend/apply.js'
import type { IptablesBackend } from '../backend/iptables.js'
import { VerifyError } from '../errors.js'
import type { Family, Settings } from '../settings/types.js'
import { compareState } from './compare.js'

export interface FamilyDrift {
  readonly family: Family
  readonly drift: readonly string[]
}

export const readBackDrift = (backend: IptablesBackend, targets: readonly FamilyTarget[]): Promise<FamilyDrift[]> =>
  Promise.all(targets.map(async ({ family, desired }) => ({ family, drift: compareState(desired, await readOwned(backend, family)) })))

export const describeDrift = (drifts: readonly FamilyDrift[]): string[] =>
  drifts.flatMap(({ family, drift }) => (drift.length === 0 ? [] : [`${family}:`, ...drift.map(line => `  ${line}`)]))

/** Runs the live probe when asked; throws VerifyError naming every failed check. */
export const liveChecks = async (settings: Settings, families: readonly Family[]): Promise<string[]> => {
  if (settings.verify !== 'live') return ['not run (ISTIO_VERIFY=rules)']
  const { probeCapture } = await import('./probe.js')
  const checks = await probeCapture(settings, families)
  const lines = checks.map(c => `${c.family} ${c.name}: ${c.status}, ${c.detail}`)
  if (checks.some(c => c.status === 'failed')) throw new VerifyError('the live probe saw traffic go where the rules say it should not', lines)
  return lines
}
