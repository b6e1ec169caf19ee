// Long-lived and supervised processes, started with execa: the listeners and peers of the demo and the tests, and
// the proxy under the agent. None of this is on init's path (see exec.ts for why that matters).

import { constants } from 'node:os'
import { execa } from 'execa'

export interface Started {
  readonly pid: number
  /** The exit code, or 128+N when a signal ended it. */
  readonly exited: Promise<number>
  /** Resolves with the first stdout line that `accept` takes; rejects if the process ends or time runs out. */
  waitForLine(accept: (line: string) => boolean, timeoutMs?: number): Promise<string>
  readonly lines: readonly string[]
  stop(): Promise<void>
}

/** startProcess runs a long-lived child (a listener, a proxy) and collects its stdout and stderr lines. */
export const startProcess = (file: string, args: readonly string[], env?: Readonly<Record<string, string | undefined>>): Started => {
  const child = execa(file, args, { reject: false, buffer: false, stdin: 'ignore', ...(env && { env, extendEnv: false }) })
  const lines: string[] = []
  const waiters = new Set<() => void>()
  let ended = false
  let partial = ''
  const collect = (chunk: Buffer): void => {
    const parts = (partial + chunk.toString()).split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts)
    for (const wake of waiters) wake()
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const exited = child.then(result => {
    ended = true
    for (const wake of waiters) wake()
    return result.exitCode ?? 128 + (result.signal ? (constants.signals[result.signal] ?? 0) : 0)
  })
  return {
    pid: child.pid ?? -1,
    exited,
    lines,
    // The default bounds a hang, not a start: a Node listener took over 5 s to say ready on a loaded 2-core machine.
    waitForLine: (accept, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = lines.find(accept)
          if (found !== undefined) done(() => resolve(found))
          else if (ended) done(() => reject(new Error(`${file} ended without the expected output; it printed: ${lines.join(' | ')}`)))
        }
        const timer = setTimeout(
          () => done(() => reject(new Error(`${file}: no expected output within ${timeoutMs} ms; it printed: ${lines.join(' | ')}`))),
          timeoutMs,
        )
        const done = (settle: () => void): void => {
          clearTimeout(timer)
          waiters.delete(check)
          settle()
        }
        waiters.add(check)
        check()
      }),
    stop: async () => {
      child.kill('SIGTERM')
      await child
    },
  }
}

export interface Status {
  readonly exitCode: number
  /** stdout and stderr interleaved, as a person would have seen them. */
  readonly output: string
}

export interface StatusOf extends Status {
  /** It ran past `timeoutMs` and was killed (SIGTERM, then SIGKILL). */
  readonly timedOut: boolean
}

/** runForStatus runs a command to its end (or its timeout) and reports how it went instead of throwing. */
export const runForStatus = async (
  file: string,
  args: readonly string[],
  env?: Readonly<Record<string, string | undefined>>,
  options: { readonly timeoutMs?: number } = {},
): Promise<StatusOf> => {
  const result = await execa(file, args, {
    reject: false,
    all: true,
    stdin: 'ignore',
    ...(env && { env, extendEnv: false }),
    ...(options.timeoutMs !== undefined && { timeout: options.timeoutMs, forceKillAfterDelay: 1000 }),
  })
  return { exitCode: result.exitCode ?? 128, output: result.all ?? '', timedOut: result.timedOut }
}

export interface Supervised {
  readonly pid: number
  /** How the process ended: its exit code, or the signal that ended it. */
  readonly ended: Promise<{ readonly exitCode: number | undefined; readonly signal: NodeJS.Signals | undefined }>
  kill(signal: NodeJS.Signals): void
}

/** spawnInherited starts a process that shares this one's stdin, stdout and stderr (the proxy under the agent). */
export const spawnInherited = (file: string, args: readonly string[]): Supervised => {
  const child = execa(file, args, { stdio: 'inherit', reject: false })
  return {
    pid: child.pid ?? -1,
    ended: child.then(result => ({ exitCode: result.exitCode, signal: result.signal })),
    kill: signal => void child.kill(signal),
  }
}
