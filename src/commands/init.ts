// init: plan, apply, verify, report. The order is the contract: nothing is written before every setting is valid
// and the host has been probed, and success is only reported once the kernel's rules read back exactly.

import { VerifyError } from '../errors.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import type { Plan } from '../plan/types.js'
import { formatSettings } from '../settings/format.js'
import type { Settings } from '../settings/types.js'
import { driftOf } from '../verify/drift.js'
import { describeDrift, liveChecks, warmUpProbe } from '../verify/read-back.js'
import { describeBackend, describeFamilies, prepare, withLock, type Prepared, type Timed } from './prepare.js'

const round = (ms: number): number => Math.round(ms * 10) / 10

/** What one mode's init does around the shared steps: how it prepares, and its live probe. */
export interface InitJob {
  /** The command's name in the report ("init", "istio-iptables"). */
  readonly name: string
  readonly settings: unknown
  readonly prepare: (io: Io, timed: Timed) => Promise<Prepared>
  /** Loads the probe while the rule tools run, when one will run. */
  readonly warm: boolean
  /** The live checks' lines; throws VerifyError naming every failed check. */
  readonly live: (plan: Plan) => Promise<string[]>
}

/** applyAndReport: prepare, apply, read back exactly, probe, then report. `before` holds timings taken before it ran. */
export const applyAndReport = async (job: InitJob, ioIn: Io, logger: Logger, before: Record<string, number> = {}): Promise<void> => {
  // Every process started is counted: each costs a few milliseconds of every pod's start.
  let processes = 0
  const io: Io = {
    ...ioIn,
    exec: (...args) => {
      processes++
      return ioIn.exec(...args)
    },
  }
  const timings: Record<string, number> = { ...before }
  const timed = async <T>(phase: string, work: () => Promise<T>): Promise<T> => {
    const start = io.now()
    const result = await work()
    timings[`${phase}Ms`] = round(io.now() - start)
    return result
  }
  const { prepared, outcomes, drifts, live } = await withLock(io, async () => {
    const prepared = await job.prepare(io, timed)
    const { backend, plan } = prepared
    const applying = timed('apply', () => backend.apply(plan))
    const warm = job.warm ? warmUpProbe() : undefined
    const { applied: outcomes, known } = await applying
    await warm
    const drifts = await timed('read-back', async () => driftOf(plan, await backend.read(plan, known), prepared.accepted))
    const drift = describeDrift(drifts)
    if (drift.length > 0) throw new VerifyError('the rules read back differ from the plan, or rules elsewhere let captured TCP escape', drift)
    const live = await timed('live', () => job.live(plan))
    return { prepared, outcomes, drifts, live }
  })
  const applied = outcomes.map(o => `${o.scope}: ${o.count} ${o.unit} in ${o.where}, ${o.changed ? 'applied' : 'already in place, left untouched'}`)
  // From our first line of JavaScript (module loading and settings included); Node's own start comes before it.
  timings['nodeStartMs'] = round(io.startedAt)
  timings['totalMs'] = round(io.now() - io.startedAt)
  logger.report(job.name, `sidecar-redirect ${job.name}: ok in ${timings['totalMs']} ms`, {
    settings: job.settings,
    backend: describeBackend(prepared),
    families: describeFamilies(prepared),
    applied,
    verified: drifts.map(d => `${d.scope}: read back exactly as planned`),
    live,
    timings,
    processes,
  })
}

/** `before` holds timings taken before init itself ran (reading and checking the settings). */
export const runInit = (settings: Settings, io: Io, logger: Logger, before: Record<string, number> = {}): Promise<void> =>
  applyAndReport(
    {
      name: 'init',
      settings: formatSettings(settings),
      prepare: (io, timed) => prepare(settings, io, timed),
      warm: settings.verify === 'live',
      live: plan => liveChecks(settings.verify, plan),
    },
    io,
    logger,
    before,
  )
