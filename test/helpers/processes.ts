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
