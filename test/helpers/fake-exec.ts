// A recording fake at the exec seam: each expected call names its command line (and, where it matters, what it
// is fed) and scripts the reply. A call that was not expected, or one made out of order within its command,
// fails the test, and so does an expected call that never came. Nothing runs, so these tests need no root.
import type { Test } from 'tap'
import { toFailure, type Exec, type ExecResult } from '../../src/exec/exec.js'

export interface Expected {
  /** The command line, words joined by spaces: `iptables-nft-save`, `nft -f -`. */
  readonly run: string
  /** What the command is fed, when the test cares: a string to match exactly, or a pattern. */
  readonly input?: string | RegExp
  /** The reply: stdout, or a failure with this stderr (and exit status, 1 unless given), classified as the real seam does. */
  readonly stdout?: string
  readonly fails?: { readonly stderr: string; readonly exitCode?: number }
  /** Or what the real seam throws before a tool runs at all (not installed, not permitted, timed out). */
  readonly throws?: () => Error
  /** How many times this call may be made (families run side by side, so order is kept per command only). */
  readonly times?: number
}

export interface FakeExec {
  readonly exec: Exec
  /** Every call made, as command lines, in the order they came. */
  readonly calls: string[]
  /** What each call was fed, by command line. */
  readonly inputs: Map<string, string[]>
  /** Fails the test for expected calls that never came. */
  done(): void
}

export const fakeExec = (t: Test, script: readonly Expected[]): FakeExec => {
  const pending = script.map(e => ({ ...e, left: e.times ?? 1 }))
  const calls: string[] = []
  const inputs = new Map<string, string[]>()
  const exec: Exec = async (file, args, input, options): Promise<ExecResult> => {
    const line = [file, ...args].join(' ')
    calls.push(line)
    inputs.set(line, [...(inputs.get(line) ?? []), input ?? ''])
    const next = pending.find(e => e.left > 0 && e.run === line)
    if (!next) {
      t.fail(`unexpected command: ${line}`, { calls })
      throw new Error(`unexpected command: ${line}`)
    }
    next.left--
    if (next.input !== undefined) {
      if (typeof next.input === 'string') t.equal(input ?? '', next.input, `${line} is fed the expected text`)
      else t.match(input ?? '', next.input, `${line} is fed the expected text`)
    }
    if (next.throws) throw next.throws()
    if (next.fails) {
      const failure = { file, exitCode: next.fails.exitCode ?? 1, stderr: next.fails.stderr }
      throw toFailure(line, failure, options?.classify)
    }
    return { stdout: next.stdout ?? '', stderr: '' }
  }
  return {
    exec,
    calls,
    inputs,
    done: () => {
      for (const e of pending.filter(e => e.left > 0)) t.fail(`expected command never ran: ${e.run}`, { calls })
    },
  }
}

/** The whole-path check's reads of the devices, in a pod whose devices hold nothing: no XDP, default qdiscs only. */
export const DEVICE_READS: readonly Expected[] = [
  { run: 'ip -j link show', stdout: '[{"ifindex":1,"ifname":"lo"},{"ifindex":2,"ifname":"eth0"}]' },
  {
    run: 'tc -j qdisc show',
    stdout: '[{"kind":"noqueue","handle":"0:","dev":"lo","root":true},{"kind":"noqueue","handle":"0:","dev":"eth0","root":true}]',
  },
]
