// The seam through which the rule commands start processes. Everything else receives an Exec, so tests can record
// what would run (test/helpers/fake-exec.ts); failures come back classified once, here: by errno (ENOENT: not
// installed), by the timeout, and by exit status through the classify the caller passes for its tool (each
// backend's, src/backend/*/classify.ts), which names the reason (not permitted, refused, unsupported, ...).
// Callers ask for the reason, never read the text. It uses node:child_process directly, not execa: init runs it
// on every pod start, and loading execa alone cost ~42 ms of a ~150 ms init on Node 24, with ~30 ms for the first
// process it starts against ~4.5 ms for a plain spawn (bench/init.mjs). Long-lived processes (the proxy, the
// demo's peers) are started with execa in processes.ts, off init's path.

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
  /** How this tool's failures are told apart (the tool's classify); without one, a failure is only `refused`. */
  readonly classify?: Classify
}

/**
 * Why a tool failed, as its classify told it: `not-permitted` (a right is missing), `busy` (a lock held too long),
 * `missing-extension` (a userspace or kernel module), `unsupported` (the kernel lacks the subsystem), `exists` and
 * `absent` (what was added is there, what was read is not), else `refused`.
 */
export type Reason = 'refused' | 'not-permitted' | 'busy' | 'missing-extension' | 'unsupported' | 'exists' | 'absent'

/** A finished tool's failure as the seam saw it. */
export interface Failure {
  readonly file: string
  /** The exit status, or null when a signal ended it. */
  readonly exitCode: number | null
  readonly stderr: string
}

/** What a tool's classify says of a failure: the reason, what it concerns (an extension's name), the input line blamed. */
export interface Classified {
  readonly reason: Reason
  readonly subject?: string
  readonly line?: number
}

export type Classify = (failure: Failure) => Classified

export type Exec = (file: string, args: readonly string[], input?: string, options?: ExecOptions) => Promise<ExecResult>

/** A command ran and failed, classified: `reason` and `subject` as its classify said, `line` the input line it blamed. */
export class CommandFailed extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly line: number | undefined,
    readonly exitCode: number | null = 1,
    readonly reason: Reason = 'refused',
    readonly subject?: string,
  ) {
    super(`${command} failed: ${firstLine(stderr)}`)
  }
}

/** The tool is not there (ENOENT on spawn, or a launcher's 127). Exit 3, as any EnvironmentError. */
export class NotInstalled extends EnvironmentError {
  constructor(
    readonly file: string,
    options?: ErrorOptions,
  ) {
    super(`${file} is not installed${PACKAGES[file] === undefined ? '' : ` (the ${PACKAGES[file]} package)`}`, options)
  }
}

/** The tool ran and its classify said a right was missing. Exit 3. */
export class NotPermitted extends EnvironmentError {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message)
  }
}

/** isNotInstalled: `error` says the program (`file`, when given) is not installed. */
export const isNotInstalled = (error: unknown, file?: string): error is NotInstalled =>
  error instanceof NotInstalled && (file === undefined || error.file === file)

/** failedFor: `error` is a tool's failure its classify gave this reason. */
export const failedFor = (error: unknown, reason: Reason): error is CommandFailed => error instanceof CommandFailed && error.reason === reason

// The Debian package each program we run comes in, for the "not installed" message.
const PACKAGES: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    ['iptables', 'ip6tables'].flatMap(t => ['', '-legacy', '-nft'].flatMap(v => ['-save', '-restore'].map(verb => [`${t}${v}${verb}`, 'iptables']))),
  ),
  nft: 'nftables',
  ipset: 'ipset',
  ip: 'iproute2',
  tc: 'iproute2',
}

const UNCLASSIFIED: Classify = () => ({ reason: 'refused' })

/**
 * toFailure turns a finished tool's failure into the one error callers see, through the tool's classify: NotPermitted
 * for a missing right, else CommandFailed carrying the reason. Shared with the recording fake, so tests see what
 * the real seam throws. Pure.
 */
export const toFailure = (command: string, failure: Failure, classify: Classify = UNCLASSIFIED): NotPermitted | CommandFailed => {
  const { reason, subject, line } = classify(failure)
  if (reason === 'not-permitted')
    return new NotPermitted(failure.file, `${command}: not permitted (run as root with CAP_NET_ADMIN): ${firstLine(failure.stderr)}`)
  return new CommandFailed(command, failure.stderr || `exited with ${failure.exitCode ?? 'a signal'}`, line, failure.exitCode, reason, subject)
}

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
    // LC_ALL=C keeps error text in English, which the classifiers of the tools that give only text rely on.
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
    if (error.code === 'ENOENT') throw new NotInstalled(file, { cause: error })
    // A directory on PATH this user may not search, or a file it may not run: the environment, not a bug.
    if (error.code === 'EACCES' || error.code === 'EPERM')
      throw new EnvironmentError(`${file} cannot be run by this user (${error.code})`, { cause: error })
    throw error
  })
  if (result.timedOut) throw timedOut(command, input, options.timeoutMs ?? 0)
  if (options.launcher !== undefined && result.code === LAUNCHER_NOT_FOUND)
    throw new NotInstalled(file, { cause: new Error(firstLine(result.stderr)) })
  if (result.code !== 0) throw toFailure(command, { file, exitCode: result.code, stderr: result.stderr }, options.classify)
  return { stdout: result.stdout, stderr: result.stderr }
}
