// Runs a tool's classify over a table of what the tool prints, and the seam's toFailure over the same: a missing
// right becomes NotPermitted (exit 3), anything else a CommandFailed carrying its reason and exit status.
import t from 'tap'
import { EnvironmentError } from '../../src/errors.js'
import { CommandFailed, NotPermitted, toFailure, type Classified, type Classify } from '../../src/exec/exec.js'

export type ClassifyRow = readonly [name: string, exitCode: number, stderr: string, expected: Classified]

export const classifyTable = (tool: string, classify: Classify, rows: readonly ClassifyRow[]): void => {
  for (const [name, exitCode, stderr, expected] of rows) {
    t.test(`${tool}: ${name}`, async t => {
      t.same(classify({ file: tool, exitCode, stderr }), expected)
      const error = toFailure(`${tool} -f -`, { file: tool, exitCode, stderr }, classify)
      if (expected.reason === 'not-permitted') {
        t.type(error, NotPermitted)
        t.type(error, EnvironmentError, 'a missing right is the environment (exit 3)')
        t.match(error.message, /not permitted \(run as root with CAP_NET_ADMIN\)/)
      } else {
        t.type(error, CommandFailed)
        t.match(error, { reason: expected.reason, exitCode, stderr })
      }
    })
  }
}
