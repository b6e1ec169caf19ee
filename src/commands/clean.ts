// clean: remove every chain and jump of ours, one transaction per family; rules we do not own are not touched.

import { readOwned } from '../backend/apply.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import { EMPTY_STATE, renderTransaction } from '../plan/render-iptables.js'
import type { Settings } from '../settings/types.js'
import { describeBackend, prepare, withLock } from './prepare.js'

export const runClean = async (settings: Settings, io: Io, logger: Logger): Promise<void> => {
  const removed = await withLock(io, async () => {
    const prepared = await prepare(settings, io)
    const { backend, targets } = prepared
    const lines: string[] = []
    for (const { family } of targets) {
      const existing = await readOwned(backend, family)
      const count = existing.jumps.length + existing.chains.size
      if (count > 0) await backend.restore(family, renderTransaction(EMPTY_STATE, existing))
      lines.push(`${family}: ${count === 0 ? 'nothing of ours was there' : `removed ${existing.chains.size} chains and ${existing.jumps.length} jumps`}`)
    }
    return { backend: describeBackend(prepared), lines }
  })
  logger.report('clean', 'sidecar-redirect clean: ok', { backend: removed.backend, removed: removed.lines })
}
