// The agent's second half, already without privileges: start the proxy, pass signals on, restart it on failure
// with backoff if asked, and exit as the proxy did. Every proxy it starts inherits the agent's UID, groups,
// capabilities, no_new_privs and cgroup, so a restarted proxy is exactly as classified as the first. After SIGTERM
// or SIGINT the proxy has `drainMs` to exit, then it is killed: one that ignores the signal must not hold the pod
// until the kubelet's own SIGKILL, which would leave no word of why.

import { constants } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Supervised } from '../exec/processes.js'
import type { Logger } from '../log.js'

export interface SuperviseOptions {
  readonly command: string
  readonly args: readonly string[]
  readonly restart: 'no' | 'on-failure'
  readonly drainMs: number
  readonly spawn: (file: string, args: readonly string[]) => Supervised
  readonly logger: Logger
  readonly now: () => number
}

const FORWARDED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']
// SIGHUP is passed on but starts no drain: many proxies take it as "reload", not "stop".
const DRAINED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']
const FIRST_DELAY_MS = 100
const MAX_DELAY_MS = 5000
// A proxy that stayed up this long before failing starts the backoff afresh.
const STABLE_MS = 10_000

/** backoffMs is the delay before restart number `attempt` (1, 2, ...). Pure. */
export const backoffMs = (attempt: number): number => Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (attempt - 1))

/** supervise runs the proxy until it ends for good; resolves with the exit code the agent should exit with. */
export const supervise = async (options: SuperviseOptions): Promise<number> => {
  const { logger } = options
  let child: Supervised | undefined
  let stopping: NodeJS.Signals | undefined
  let wake: (() => void) | undefined
  let drain: NodeJS.Timeout | undefined
  const onSignal = (signal: NodeJS.Signals): void => {
    stopping = signal
    logger.event('signal', `${signal} received, passing it to the proxy`, { signal, pid: child?.pid })
    child?.kill(signal)
    wake?.()
    if (drain !== undefined || !DRAINED.includes(signal)) return
    drain = setTimeout(() => {
      logger.event('drain', `the proxy did not exit within ${options.drainMs} ms of ${signal}: killing it`, {
        pid: child?.pid,
        drainMs: options.drainMs,
      })
      child?.kill('SIGKILL')
    }, options.drainMs)
  }
  for (const signal of FORWARDED) process.on(signal, onSignal)
  try {
    let attempt = 0
    for (;;) {
      const started = options.now()
      child = options.spawn(options.command, options.args)
      logger.event('start', `proxy started, pid ${child.pid}: ${[options.command, ...options.args].join(' ')}`, { pid: child.pid })
      const { exitCode, signal } = await child.ended
      const code = signal ? 128 + (constants.signals[signal] ?? 0) : (exitCode ?? 1)
      logger.event('exit', `proxy pid ${child.pid} ${signal ? `killed by ${signal}` : `exited with ${exitCode}`}`, {
        pid: child.pid,
        exitCode: exitCode ?? null,
        signal: signal ?? null,
      })
      if (stopping || options.restart === 'no' || code === 0) return code
      attempt = options.now() - started > STABLE_MS ? 1 : attempt + 1
      const delay = backoffMs(attempt)
      logger.event('restart', `restarting the proxy in ${delay} ms (attempt ${attempt})`, { attempt, delayMs: delay })
      await Promise.race([sleep(delay), new Promise<void>(resolve => (wake = resolve))])
      if (stopping) return code
    }
  } finally {
    clearTimeout(drain)
    for (const signal of FORWARDED) process.off(signal, onSignal)
  }
}
