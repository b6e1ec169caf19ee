// The one seam through which the tool starts processes. Everything else receives an Exec, so tests can record
// what would run, and this is the only file that reads a process's stderr.

import { constants } from 'node:os'
import { execa } from 'execa'
import { EnvironmentError } from '../errors.js'

export interface ExecResult {
  readonly stdout: string
  readonly stderr: string
}

export interface ExecOptions {
  /** Kill the program after this long and throw EnvironmentError: a hung iptables-restore must not hang init. */
  readonly timeoutMs?: number
}

export type Exec = (file: string, args: readonly string[], input?: string, options?: ExecOptions) => Promise<ExecResult>

/** A command ran and failed; `line` is the input line it blamed, when it said. */
export class CommandFailed extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly line: number | undefined,
  ) {
    super(`${command} failed: ${stderr.trim().split('\n')[0] ?? ''}`)
  }
}

// iptables-restore says "line N failed", or "Error occurred at line: N" after the reason.
const blamedLine = (stderr: string): number | undefined => {
  const found = /line:? (\d+)/.exec(stderr)?.[1]
  return found === undefined ? undefined : Number(found)
}

// iptables exits 4 (a resource problem) when it may not read or change the tables; the text says which.
const DENIED = /Permission denied|Operation not permitted/
const isDenied = (exitCode: number | undefined, stderr: string): boolean => exitCode === 4 && DENIED.test(stderr)

// What a killed program was doing, as far as this seam knows: its argv and the size of what it was fed.
const timedOut = (command: string, input: string | undefined, timeoutMs: number): EnvironmentError =>
  new EnvironmentError(
    `${command} (${input ? `given a ${Buffer.byteLength(input)}-byte transaction on stdin` : 'given no input'}) was still running after ${timeoutMs / 1000} s (ISTIO_EXEC_TIMEOUT) and was killed`,
  )

export const realExec: Exec = async (file, args, input, options = {}) => {
  // LC_ALL=C keeps error text in English, which blamedLine and DENIED rely on. A killed program gets SIGTERM,
  // then SIGKILL a second later if it ignores that.
  const result = await execa(file, args, {
    input: input ?? '',
    reject: false,
    env: { LC_ALL: 'C' },
    stripFinalNewline: false,
    ...(options.timeoutMs !== undefined && { timeout: options.timeoutMs, forceKillAfterDelay: 1000 }),
  })
  const command = [file, ...args].join(' ')
  if (result.timedOut) throw timedOut(command, input, options.timeoutMs ?? 0)
  if (result.failed && (result as { code?: string }).code === 'ENOENT') {
    throw new EnvironmentError(`${file} is not installed (the image needs the iptables package)`)
  }
  if (result.failed) {
    if (isDenied(result.exitCode, result.stderr)) {
      throw new EnvironmentError(`${command}: not permitted (run as root with CAP_NET_ADMIN): ${result.stderr.trim()}`)
    }
    throw new CommandFailed(command, result.stderr || (result.message ?? ""), blamedLine(result.stderr))
  }
  return { stdout: result.stdout, stderr: result.stderr }
}

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
    waitForLine: (accept, timeoutMs = 5000) =>
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

/** runForStatus runs a command to its end and reports how it went instead of throwing. */
export const runForStatus = async (file: string, args: readonly string[], env?: Readonly<Record<string, string | undefined>>): Promise<Status> => {
  const result = await execa(file, args, { reject: false, all: true, stdin: 'ignore', ...(env && { env, extendEnv: false }) })
  return { exitCode: result.exitCode ?? 128, output: result.all ?? '' }
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
