// ready: exits 0 as soon as the proxy accepts a TCP connection on its port. It is the proxy's startupProbe as a
// native sidecar and its postStart hold in the classic layout, so it is cheap (no yargs, no root) and bounded.

import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { NotReadyError } from '../errors.js'
import type { Logger } from '../log.js'
import type { AgentSettings, Settings } from '../settings/types.js'

const RETRY_MS = 100

/** accepts resolves true if something accepts a connection at host:port within `timeoutMs`; never rejects. */
export const accepts = (host: string, port: number, timeoutMs: number): Promise<boolean> =>
  new Promise(resolve => {
    const socket = net.connect({ host, port })
    const settle = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => settle(false))
    socket.once('connect', () => settle(true))
    socket.once('error', () => settle(false))
  })

// The proxy may listen on IPv4, IPv6 or both: either loopback accepting is enough.
const LOOPBACKS = ['127.0.0.1', '::1'] as const

/** waitForProxy polls the proxy's port on loopback until it accepts or `timeoutMs` passes; throws NotReadyError. */
export const waitForProxy = async (port: number, timeoutMs: number, now: () => number): Promise<number> => {
  const started = now()
  for (let attempt = 1; ; attempt++) {
    const left = timeoutMs - (now() - started)
    const tries = await Promise.all(LOOPBACKS.map(host => accepts(host, port, Math.max(1, Math.min(1000, left)))))
    if (tries.some(Boolean)) return attempt
    if (now() - started + RETRY_MS > timeoutMs) {
      throw new NotReadyError(`nothing accepted a connection on port ${port} (ISTIO_PROXY_PORT) within ${timeoutMs / 1000} s (ISTIO_READY_SECONDS)`)
    }
    await sleep(RETRY_MS)
  }
}

export const runReady = async (settings: Settings, agent: AgentSettings, now: () => number, logger: Logger): Promise<void> => {
  const attempts = await waitForProxy(settings.proxyPort, agent.readySeconds * 1000, now)
  logger.event('ready', `the proxy accepts connections on port ${settings.proxyPort} (attempt ${attempts})`, { port: settings.proxyPort, attempts })
}
