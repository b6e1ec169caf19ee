// The seam through which the rule commands start processes. Everything else receives an Exec, so tests can record
// what would run (test/helpers/fake-exec.ts); failures come back classified (not installed, not permitted, timed
// out, or CommandFailed with the tool's stderr and the line it blamed). It uses node:child_process directly,
// not execa: init runs it on every pod start, and loading execa, and its first process, cost init far more than a
// plain spawn (figures: docs/performance.md). Long-lived
// processes (the proxy, the demo's peers) are started with execa in processes.ts, off init's path.

import { spawn } from 'node:child_process'
import { EnvironmentError } from '../errors.js'
import { firstLine } from '../text.js'

export interface ExecResult {
  readonly stdout: string
  readonly stderr: string
}

export interface ExecOptions {
  /** Kill the program after this long and throw EnvironmentError: a hung iptables-restore must not hang init. */
  readonly timeoutMs?: number
  /**
   * A program that execs `file` (e.g. nsenter and its flags, ending in `--`), run in its place. Messages and
   * classification still name `file`: a launcher that could not exec it (exit 127, as nsenter and env exit) is
   * `file` not installed.
   */
  readonly launcher?: readonly string[]
  /** Variables added to this process's environment for the program (e.g. XTABLES_LOCKFILE). */
  readonly env?: Readonly<Record<string, string>>
}

export type Exec = (file: string, args: readonly string[], input?: string, options?: ExecOptions) => Promise<ExecResult>

/** A command ran and failed; `line` is the input line it blamed, when it said. */
export class CommandFailed extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly line: number | undefined,
  ) {
    super(`${command} failed: ${firstLine(stderr)}`)
  }
}

// iptables-restore says "line N failed", or "Error occurred at line: N" after the reason.
const blamedLine = (stderr: string): number | undefined => {
  const found = /line:? (\d+)/.exec(stderr)?.[1]
  return found === undefined ? undefined : Number(found)
}

// A tool refused for want of the right. iptables exits 4 (a resource problem) and says why; nft and ipset exit 1,
// so only their own words tell it from a failure whose text merely holds the word (a rule's comment): nft's
// "(you must be root)" or its netlink error, ipset's "Kernel error received", ip's "RTNETLINK answers".
const DENIED = /Permission denied|Operation not permitted/
const TOOL_DENIED =
  /\(you must be root\)|^netlink: Error: .*Operation not permitted|Kernel error received: Operation not permitted|^RTNETLINK answers: Operation not permitted/m
const isDenied = (exitCode: number | null, stderr: string): boolean => (exitCode === 4 && DENIED.test(stderr)) || TOOL_DENIED.test(stderr)

interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

// At the timeout the program's whole process group gets SIGTERM, then SIGKILL this much later, and our ends of its
// pipes are closed then: a child it started (a wrapper's `sleep`), or one that left the group, cannot hold init.
const KILL_AFTER_MS = 1000

/** Signals a process group, which may already be gone. */
const signalGroup = (pid: number | undefined, signal: NodeJS.Signals): void => {
  if (pid === undefined) return
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: every process of the group has ended.
  }
}

// The process is started before this returns (spawn forks at once): a caller that entered a namespace for the
// call (src/cni/pod-io.ts) may leave it as soon as this returns.
const runToEnd = (file: string, args: readonly string[], input: string | undefined, options: ExecOptions): Promise<Finished> =>
  new Promise((resolve, reject) => {
    const { timeoutMs, launcher = [], env } = options
    const [program = file, ...argv] = [...launcher, file, ...args]
    // LC_ALL=C keeps error text in English, which blamedLine and DENIED rely on.
    // A tool with nothing to read gets no stdin pipe: one pipe less to make for each read.
    // detached: the program leads a process group (and session) of its own, so the timeout reaches all it started.
    const child = spawn(program, argv, {
      env: { ...process.env, ...env, LC_ALL: 'C' },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    let code: number | null = null
    let settled = false
    const timers: NodeJS.Timeout[] = []
    const finish = (): void => {
      if (settled) return
      settled = true
      for (const timer of timers) clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), timedOut })
    }
    if (timeoutMs !== undefined) {
      timers.push(
        setTimeout(() => {
          // Running, or exited while something it started still holds its output: either way it is over now.
          timedOut = true
          signalGroup(child.pid, 'SIGTERM')
          timers.push(
            setTimeout(() => {
              signalGroup(child.pid, 'SIGKILL')
              for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.destroy()
              finish()
            }, KILL_AFTER_MS),
          )
        }, timeoutMs),
      )
    }
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk))
    child.once('error', error => {
      for (const timer of timers) clearTimeout(timer)
      settled = true
      reject(error)
    })
    child.once('exit', exitCode => {
      code = exitCode
    })
    // 'close' comes once the program has exited and every holder of its output pipes has closed them.
    child.once('close', exitCode => {
      code = exitCode
      finish()
    })
    // A tool that exits before reading all of its input closes the pipe: its exit status says what happened.
    child.stdin?.on('error', () => undefined)
    child.stdin?.end(input)
  })

// What a killed program was doing, as far as this seam knows: its argv and the size of what it was fed. "Still
// running" covers a program that exited while a process it started still held its output.
const timedOut = (command: string, input: string | undefined, timeoutMs: number): EnvironmentError =>
  new EnvironmentError(
    `${command} (${input ? `given a ${Buffer.byteLength(input)}-byte transaction on stdin` : 'given no input'}) was still running after ${timeoutMs / 1000} s (ISTIO_EXEC_TIMEOUT) and was killed with its process group`,
  )

// What a launcher (nsenter, env) exits with when it cannot exec the program because it is not there.
const LAUNCHER_NOT_FOUND = 127

const notInstalled = (file: string, cause: unknown): EnvironmentError =>
  new EnvironmentError(`${file} is not installed (the image needs the iptables package)`, { cause })

export const realExec: Exec = (file, args, input, options = {}) => {
  // Not an async function: the process must be started before this returns (see runToEnd).
  const command = [file, ...args].join(' ')
  return finish(file, command, input, options, runToEnd(file, args, input, options))
}

const finish = async (
  file: string,
  command: string,
  input: string | undefined,
  options: ExecOptions,
  running: Promise<Finished>,
): Promise<ExecResult> => {
  const result = await running.catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw notInstalled(file, error)
    // A directory on PATH this user may not search, or a file it may not run: the environment, not a bug.
    if (error.code === 'EACCES' || error.code === 'EPERM')
      throw new EnvironmentError(`${file} cannot be run by this user (${error.code})`, { cause: error })
    throw error
  })
  if (result.timedOut) throw timedOut(command, input, options.timeoutMs ?? 0)
  if (options.launcher !== undefined && result.code === LAUNCHER_NOT_FOUND) throw notInstalled(file, new Error(firstLine(result.stderr)))
  if (result.code !== 0) {
    if (isDenied(result.code, result.stderr)) {
      throw new EnvironmentError(`${command}: not permitted (run as root with CAP_NET_ADMIN): ${firstLine(result.stderr)}`)
    }
    throw new CommandFailed(command, result.stderr || `exited with ${result.code ?? 'a signal'}`, blamedLine(result.stderr))
  }
  return { stdout: result.stdout, stderr: result.stderr }
}
