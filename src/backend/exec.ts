// The seam through which the rule commands start processes. Everything else receives an Exec, so tests can record
// what would run, and this is the only file that reads a rule tool's stderr. It uses node:child_process directly,
// not execa: init runs it on every pod start, and loading execa alone cost ~42 ms of a ~150 ms init on Node 24,
// with ~30 ms for the first process it starts against ~4.5 ms for a plain spawn (bench/init.mjs). Long-lived
// processes (the proxy, the demo's peers) are started with execa in processes.ts, off init's path.

import { spawn } from 'node:child_process'
import { EnvironmentError } from '../errors.js'

export interface ExecResult {
  readonly stdout: string
  readonly stderr: string
}

export type Exec = (file: string, args: readonly string[], input?: string) => Promise<ExecResult>

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

interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const runToEnd = (file: string, args: readonly string[], input: string): Promise<Finished> =>
  new Promise((resolve, reject) => {
    // LC_ALL=C keeps error text in English, which blamedLine and DENIED rely on.
    const child = spawn(file, args, { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.once('error', reject)
    child.once('close', code => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }))
    // A tool that exits before reading all of its input closes the pipe: its exit status says what happened.
    child.stdin.on('error', () => undefined)
    child.stdin.end(input)
  })

export const realExec: Exec = async (file, args, input) => {
  const command = [file, ...args].join(' ')
  const result = await runToEnd(file, args, input ?? '').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new EnvironmentError(`${file} is not installed (the image needs the iptables package)`, { cause: error })
    throw error
  })
  if (result.code !== 0) {
    if (isDenied(result.code ?? undefined, result.stderr)) {
      throw new EnvironmentError(`${command}: not permitted (run as root with CAP_NET_ADMIN): ${result.stderr.trim()}`)
    }
    throw new CommandFailed(command, result.stderr || `exited with ${result.code ?? 'a signal'}`, blamedLine(result.stderr))
  }
  return { stdout: result.stdout, stderr: result.stderr }
}
