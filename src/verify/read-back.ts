// What verification reports: the read-back drift of each scope, and the live probe's checks.

import type { Drift } from '../backend/types.js'
import { VerifyError } from '../errors.js'
import { loadLibc } from '../net/libc.js'
import type { Plan } from '../plan/types.js'
import type { VerifyMode } from '../settings/types.js'

export const describeDrift = (drifts: readonly Drift[]): string[] =>
  drifts.flatMap(({ scope, drift }) => (drift.length === 0 ? [] : [`${scope}:`, ...drift.map(line => `  ${line}`)]))

/**
 * Loads the live probe and its FFI (koffi, a native addon, slow to load: docs/performance.md) ahead of time: init calls this right after starting the first
 * rule tools, so the load runs while they do instead of after them. A failure is left for the probe to report.
 */
export const warmUpProbe = (): Promise<void> =>
  Promise.all([import('./probe.js'), Promise.resolve().then(loadLibc)]).then(
    () => undefined,
    () => undefined,
  )

/** Runs the live probe of the plan when asked; throws VerifyError naming every failed check. */
export const liveChecks = async (verify: VerifyMode, plan: Plan): Promise<string[]> => {
  if (verify !== 'live') return ['not run (ISTIO_VERIFY=rules)']
  const { probeCapture } = await import('./probe.js')
  const checks = await probeCapture(plan)
  const lines = checks.map(c => `${c.family} ${c.name}: ${c.status}, ${c.detail}`)
  if (checks.some(c => c.status === 'failed')) throw new VerifyError('the live probe saw traffic go where the rules say it should not', lines)
  return lines
}
