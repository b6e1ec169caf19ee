// clean: remove every chain, jump or table of ours; rules we do not own are not touched.

import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import type { Settings } from '../settings/types.js'
import { describeBackend, prepare, withLock } from './prepare.js'

export const runClean = async (settings: Settings, io: Io, logger: Logger): Promise<void> => {
  const removed = await withLock(io, async () => {
    // Ours go from every family the kernel has, whatever ISTIO_IPV6 now says: an earlier init may have used IPv6.
    const prepared = await prepare({ ...settings, ipv6: 'auto' }, io)
    return { backend: describeBackend(prepared), lines: await prepared.backend.clean(prepared.plan) }
  })
  logger.report('clean', 'sidecar-redirect clean: ok', { backend: removed.backend, removed: removed.lines })
}
