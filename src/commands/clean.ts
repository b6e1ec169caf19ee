// clean: remove every chain, jump or table of ours; rules we do not own are not touched.

import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import type { Settings } from '../settings/types.js'
import { describeBackend, prepare, withLock, type Prepared } from './prepare.js'

/** cleanWith removes everything of ours the backend `prepare` picks finds, under the namespace's lock, and reports. */
export const cleanWith = async (prepareIt: () => Promise<Prepared>, io: Io, logger: Logger): Promise<void> => {
  const removed = await withLock(io, async () => {
    const prepared = await prepareIt()
    return { backend: describeBackend(prepared), lines: await prepared.backend.clean(prepared.plan) }
  })
  logger.report('clean', 'sidecar-redirect clean: ok', { backend: removed.backend, removed: removed.lines })
}

// Ours go from every family the kernel has, whatever ISTIO_IPV6 now says: an earlier init may have used IPv6.
export const runClean = (settings: Settings, io: Io, logger: Logger): Promise<void> =>
  cleanWith(() => prepare({ ...settings, ipv6: 'auto' }, io), io, logger)
