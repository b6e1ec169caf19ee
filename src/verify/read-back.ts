// What verification reports: the read-back drift of each scope, and the live probe's checks.

import type { Drift } from '../backend/types.js'
import { VerifyError } from '../errors.js'
import type { Family, Settings } from '../settings/types.js'

export const describeDrift = (drifts: readonly Drift[]): string[] =>
  drifts.flatMap(({ scope, drift }) => (drift.length === 0 ? [] : [`${scope}:`, ...drift.map(line => `  ${line}`)]))

/** Runs the live probe when asked; throws VerifyError naming every failed check. */
export const liveChecks = async (settings: Settings, families: readonly Family[]): Promise<string[]> => {
  if (settings.verify !== 'live') return ['not run (ISTIO_VERIFY=rules)']
  const { probeCapture } = await import('./probe.js')
  const checks = await probeCapture(settings, families)
  const lines = checks.map(c => `${c.family} ${c.name}: ${c.status}, ${c.detail}`)
  if (checks.some(c => c.status === 'failed')) throw new VerifyError('the live probe saw traffic go where the rules say it should not', lines)
  return lines
}
