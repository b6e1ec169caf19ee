// verify: the check a running pod (or an operator) can use at any time; exit 0 only if the kernel holds exactly
// the plan, in order.

import { VerifyError } from '../errors.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import type { Settings } from '../settings/types.js'
import { describeDrift, liveChecks } from '../verify/read-back.js'
import { describeBackend, describeFamilies, prepare } from './prepare.js'

export const runVerify = async (settings: Settings, io: Io, logger: Logger): Promise<void> => {
  const prepared = await prepare(settings, io)
  const drifts = await prepared.backend.readBack(prepared.plan)
  // A namespace where init never ran (or clean ran) is one fact, not a diff of everything planned.
  if (drifts.length > 0 && drifts.every(d => d.absent === true)) {
    throw new VerifyError(
      `nothing of sidecar-redirect is installed in this network namespace (${prepared.backend.name}: ${drifts.map(d => d.scope).join(', ')}): init has not run here, or clean has`,
    )
  }
  const drift = describeDrift(drifts)
  // Traffic is probed even when the rules drifted: it shows what the drift does to packets.
  const live = await liveChecks(settings.verify, prepared.plan).catch((error: unknown) => {
    if (error instanceof VerifyError && drift.length > 0) return ['live probe:', ...error.details]
    throw error
  })
  if (drift.length > 0) {
    throw new VerifyError(
      `the rules in ${prepared.backend.name} differ from the plan, or rules elsewhere let captured TCP escape (- planned but missing, + present but not planned)`,
      [...drift, ...live],
    )
  }
  logger.report('verify', 'sidecar-redirect verify: ok', {
    backend: describeBackend(prepared),
    families: describeFamilies(prepared),
    verified: drifts.map(d => `${d.scope}: the rules match the plan exactly`),
    live,
  })
}
