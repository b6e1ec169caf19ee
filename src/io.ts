// What the rule commands (init, verify, clean, plan) do to the world while they read and write rules, handed in as
// one value so tests can hand in fakes: the tools they run (the exec seam), the /proc files detection reads, the
// namespace's lock, the clock and their output. It is not every effect: the live probe's sockets (verify/), the
// node side's files and servers (cni/, classifier/, webhook/), the kernel calls of net/ and the commands' own
// inputs act directly, each where its concern lives; test/architecture.test.ts lists them, so one more is a choice.

import { readdirSync, readFileSync } from 'node:fs'
import type { HostFs } from './backend/detect.js'
import { realExec, type Exec } from './exec/exec.js'
import { onPath } from './exec/on-path.js'
import { missingRight } from './exec/refusal.js'
import { acquireNetnsLock } from './backend/lock.js'
import { EnvironmentError } from './errors.js'
import { canOpenIpv6 } from './net/ipv6.js'
import type { Output } from './log.js'

export interface Io {
  readonly exec: Exec
  readonly fs: HostFs
  readonly lock: () => Promise<() => Promise<void>>
  readonly now: () => number
  /** now() when our first line of JavaScript ran: the report's timings start there. */
  readonly startedAt: number
  readonly out: Output
}

// Only ENOENT means "not there". Any other failure (EACCES, EIO, ...) is not evidence of absence, and taking it
// as such would fail open: e.g. an unreadable IPv6 config would look like a kernel without IPv6.
const absentOr = <T>(path: string, absent: T, read: () => T): T => {
  try {
    return read()
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return absent
    throw new EnvironmentError(`cannot read ${path}: ${missingRight(code) ?? code ?? (error as Error).message}`, { cause: error })
  }
}

/** A file's text, or undefined when it does not exist; synchronous (see realFs). Throws EnvironmentError. */
export const readTextOrAbsent = (path: string): string | undefined => absentOr<string | undefined>(path, undefined, () => readFileSync(path, 'utf8'))

/** A directory's entries, or none when it does not exist; synchronous (see realFs). Throws EnvironmentError. */
export const listOrAbsent = (path: string): string[] => absentOr<string[]>(path, [], () => readdirSync(path))

// Synchronous inside: these are small /proc files, read in microseconds, where a round trip through libuv's thread
// pool (and starting the pool) cost init milliseconds before its first process.
export const realFs: HostFs = {
  readFile: async path => readTextOrAbsent(path),
  readDir: async path => listOrAbsent(path),
  canOpenIpv6: () => canOpenIpv6(),
  onPath,
  // Asked only to explain a refusal: loaded then (with its FFI), not on every init's start.
  ownsNetns: async () => (await import('./net/namespace.js')).ownsOwnNetns(),
}

export const realIo = (startedAt = performance.now()): Io => ({
  startedAt,
  exec: realExec,
  fs: realFs,
  lock: () => acquireNetnsLock(),
  now: () => performance.now(),
  out: { write: text => process.stdout.write(text), error: text => process.stderr.write(text) },
})
