// Two inits in one pod (a restarted init container racing its predecessor, say) must not both read "no jump yet"
// and both insert one. The lock is an abstract unix socket: the kernel scopes those to the network namespace,
// which is exactly the scope of the rules, needs no file (the root filesystem may be read-only), and frees it when
// the holder dies, so a crashed init never blocks the next. Any process in the namespace can bind the name, so a
// waiter asks the kernel who holds it (SO_PEERCRED of a connection to it): a holder without CAP_NET_ADMIN cannot
// change rules, so it is no init, and init refuses at once instead of waiting on it.

import { readFile } from 'node:fs/promises'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { EnvironmentError } from '../errors.js'
import { peerCredentials, type PeerCredentials } from '../net/peercred.js'
import { CAP_NET_ADMIN, hasCapability, parseStatus } from '../privilege/status.js'

const LOCK_NAME = '\0sidecar-redirect/rules'
const SHOWN_NAME = '@sidecar-redirect/rules'

/**
 * Runs `work` in the network namespace whose lock is meant: this process's own by default; the node agent's
 * runs it in a pod's. Abstract names are looked up in the namespace the socket was made in, and Node makes (and
 * binds or connects) the socket within listen() and connect() themselves.
 */
export type InNamespace = <T>(work: () => T) => T

const here: InNamespace = work => work()

const tryListen = (server: net.Server, inNamespace: InNamespace): Promise<boolean> =>
  new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)))
    inNamespace(() => server.listen(LOCK_NAME, () => resolve(true)))
  })

/** The holder's credentials, or undefined when it let go before we could ask. */
const askHolder = (inNamespace: InNamespace): Promise<PeerCredentials | undefined> =>
  new Promise(resolve => {
    const socket = inNamespace(() => net.connect(LOCK_NAME))
    socket.once('connect', () => {
      const credentials = peerCredentials(socket)
      socket.destroy()
      resolve(credentials)
    })
    socket.once('error', () => resolve(undefined))
  })

// The PID is 0 when the holder is in a PID namespace we cannot see; then only its UID speaks for it.
const mayChangeRules = async (holder: PeerCredentials): Promise<boolean> => {
  if (holder.pid === 0) return holder.uid === 0
  const status = await readFile(`/proc/${holder.pid}/status`, 'utf8').catch(() => undefined)
  return status === undefined || hasCapability(parseStatus(status).capEff, CAP_NET_ADMIN)
}

const describe = (holder: PeerCredentials | undefined): string =>
  holder === undefined
    ? 'a process that let go as we asked'
    : `PID ${holder.pid === 0 ? '(in another PID namespace)' : holder.pid}, UID ${holder.uid}`

/** Waits for the namespace-wide lock and returns its release; throws EnvironmentError after `timeoutMs`. */
export const acquireNetnsLock = async (timeoutMs = 10_000, inNamespace: InNamespace = here): Promise<() => Promise<void>> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const server = net.createServer(socket => socket.destroy())
    if (await tryListen(server, inNamespace)) {
      server.unref()
      return () => new Promise(resolve => server.close(() => resolve()))
    }
    const holder = await askHolder(inNamespace)
    if (holder !== undefined && !(await mayChangeRules(holder))) {
      throw new EnvironmentError(
        `this namespace's rule lock (${SHOWN_NAME}) is held by ${describe(holder)}, which lacks CAP_NET_ADMIN, so it is no sidecar-redirect; refusing rather than waiting on it`,
      )
    }
    if (Date.now() > deadline) {
      throw new EnvironmentError(`this namespace's rule lock (${SHOWN_NAME}) has been held by ${describe(holder)} for over ${timeoutMs} ms`)
    }
    await sleep(25)
  }
}
