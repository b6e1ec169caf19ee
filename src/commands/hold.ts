// hold: the classic layout's hold container for a proxy image without our agent. Its postStart hook
// (`entrypoint ready`) keeps the kubelet from starting the app until the proxy listens; the process itself only
// has to stay up (an exit would restart it, and the hook with it) until the pod stops.

import type { Logger } from '../log.js'

export const runHold = async (logger: Logger): Promise<number> => {
  // Node exits when nothing is pending: one timer keeps it up until a signal comes.
  const keep = setInterval(() => {}, 1 << 30)
  const signal = await new Promise<NodeJS.Signals>(resolve => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
  })
  clearInterval(keep)
  logger.event('stopped', `hold stopped on ${signal}`)
  return 0
}
