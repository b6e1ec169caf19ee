// verify: the check a running pod (or an operator) can use at any time; exit 0 only if the kernel holds exactly
// the plan, in order.

import { VerifyError } from '../errors.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import type { Plan } from '../plan/types.js'
import type { Settings } from '../settings/types.js'
import { driftOf } from '../verify/drift.js'
import { describeDrift, liveChecks } from '../verify/read-back.js'
import { describeBackend, describeFamilies, prepare, type Prepared } from './prepare.js'

/** verifyPrepared reads back what `prepared` plans, probes with `live`, and reports; throws VerifyError on drift. */
export const verifyPrepared = async (prepared: Prepared, live: (plan: Plan) => Promise<string[]>, logger: Logger): Promise<void> => {
  const drifts = driftOf(prepared.plan, await prepared.backend.read(prepared.plan), prepared.accepted)
  // A namespace where init never ran (or clean ran) is one fact, not a diff of everything planned.
  if (drifts.length > 0 && drifts.every(d => d.absent === true)) {
    throw new VerifyError(
      `nothing of sidecar-redirect is installed in this network namespace (${prepared.backend.name}: ${drifts.map(d => d.scope).join(', ')}): init has not run here, or clean has`,
    )
  }
  const drift = describeDrift(drifts)
  // Traffic is probed even when the rules drifted: it shows what the drift does to packets.
  const lines = await live(prepared.plan).catch((error: unknown) => {
    if (error instanceof VerifyError && drift.length > 0) return ['live probe:', ...error.details]
    throw error
  })
  if (drift.length > 0) {
    throw new VerifyError(
      `the rules in ${prepared.backend.name} differ from the plan, or rules elsewhere let captured TCP escape (- planned but missing, + present but not planned)`,
      [...drift, ...lines],
    )
  }
  logger.report('verify', 'sidecar-redirect verify: ok', {
    backend: describeBackend(prepared),
    families: describeFamilies(prepared),
    verified: drifts.map(d => `${d.scope}: the rules match the plan exactly`),
    live: lines,
  })
}

export const runVerify = async (settings: Settings, io: Io, logger: Logger): Promise<void> =>
  verifyPrepared(await prepare(settings, io), plan => liveChecks(settings.verify, plan), logger)
