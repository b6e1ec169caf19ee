// The seam through which the rule commands start processes. Everything else receives an Exec, so tests can record
// what would run (test/helpers/fake-exec.ts); failures come back classified (not installed, not permitted, timed
// out, or CommandFailed with the tool's stderr and the line it blamed). It uses node:child_process directly,
// not execa: init runs it on every pod start, and loading execa alone cost ~42 ms of a ~150 ms init on Node 24,
// with ~30 ms for the first process it starts against ~4.5 ms for a plain spawn (bench/init.mjs). Long-lived
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

// iptables exits 4 (a resource problem) when it may not read or change the tables; the text says which.
const DENIED = /Permission denied|Operation not permitted/
const isDenied = (exitCode: number | undefined, stderr: string): boolean => exitCode === 4 && DENIED.test(stderr)

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

const runToEnd = (file: string, args: readonly string[], input: string | undefined, timeoutMs: number | undefined): Promise<Finished> =>
  new Promise((resolve, reject) => {
    // LC_ALL=C keeps error text in English, which blamedLine and DENIED rely on.
    // A tool with nothing to read gets no stdin pipe: one pipe less to make for each read.
    // detached: the program leads a process group (and session) of its own, so the timeout reaches all it started.
    const child = spawn(file, args, {
      env: { ...process.env, LC_ALL: 'C' },
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

export const realExec: Exec = async (file, args, input, options = {}) => {
  const command = [file, ...args].join(' ')
  const result = await runToEnd(file, args, input, options.timeoutMs).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new EnvironmentError(`${file} is not installed (the image needs the iptables package)`, { cause: error })
    // A directory on PATH this user may not search, or a file it may not run: the environment, not a bug.
    if (error.code === 'EACCES' || error.code === 'EPERM')
      throw new EnvironmentError(`${file} cannot be run by this user (${error.code})`, { cause: error })
    throw error
  })
  if (result.timedOut) throw timedOut(command, input, options.timeoutMs ?? 0)
  if (result.code !== 0) {
    if (isDenied(result.code ?? undefined, result.stderr)) {
      throw new EnvironmentError(`${command}: not permitted (run as root with CAP_NET_ADMIN): ${result.stderr.trim()}`)
    }
    throw new CommandFailed(command, result.stderr || `exited with ${result.code ?? 'a signal'}`, blamedLine(result.stderr))
  }
  return { stdout: result.stdout, stderr: result.stderr }
}
