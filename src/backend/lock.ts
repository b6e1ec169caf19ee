// Two inits in one pod (a restarted init container racing its predecessor, say) must not both read "no jump yet"
// and both insert one. The lock is an abstract unix socket: the kernel scopes those to the network namespace,
// which is exactly the scope of the rules, needs no file (the root filesystem may be read-only), and frees it when
// the holder dies, so a crashed init never blocks the next.

import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { EnvironmentError } from '../errors.js'

const LOCK_NAME = '\0sidecar-redirect/rules'

const tryListen = (server: net.Server): Promise<boolean> =>
  new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)))
    server.listen(LOCK_NAME, () => resolve(true))
  })

/** Waits for the namespace-wide lock and returns its release; throws EnvironmentError after `timeoutMs`. */
export const acquireNetnsLock = async (timeoutMs = 10_000): Promise<() => Promise<void>> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const server = net.createServer()
    if (await tryListen(server)) {
      server.unref()
      return () => new Promise(resolve => server.close(() => resolve()))
    }
    if (Date.now() > deadline) {
      throw new EnvironmentError(`another sidecar-redirect has held this namespace's rule lock for over ${timeoutMs} ms`)
    }
    await sleep(25)
  }
}
