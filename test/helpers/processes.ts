// Whether a process still runs, for the tests of time limits: what they kill must stop, however loaded the machine.
import { readFileSync } from 'node:fs'

/** Gone, or a zombie waiting for whoever adopted it: either way it runs no more. */
export const isEnded = (pid: number): boolean => {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

/**
 * Waits for a process that was sent SIGKILL to end: the kernel carries it out a moment later, which on a loaded
 * machine may take a while. Bounded (10 s), so a process that keeps running is reported, not waited for.
 */
export const ended = async (pid: number): Promise<boolean> => {
  for (const deadline = Date.now() + 10_000; !isEnded(pid) && Date.now() < deadline; ) await new Promise(resolve => setTimeout(resolve, 20))
  return isEnded(pid)
}

/**
 * The argv that starts `file` as users start it, without the test runner's hooks. tap puts its NODE_OPTIONS
 * (coverage and process tracking) back into every child it sees spawned, whatever env the test gives, so `env -u`
 * drops it where the program starts. Left in, a product process pays for coverage the tier does not use (the
 * installer's file took twice the CPU: docs/performance.md) and loads files from the checkout, which a process that
 * dropped its UID may not read.
 */
export const untapped = (file: string, ...args: readonly string[]): [string, ...string[]] => ['env', '-u', 'NODE_OPTIONS', file, ...args]

/** untapped as a file and its arguments, for calls that take them apart. */
export const untappedCall = (file: string, ...args: readonly string[]): [string, string[]] => {
  const [program, ...rest] = untapped(file, ...args)
  return [program, rest]
}
