// How ip and tc (iproute2) fail, told apart once, where the seam hands back a failure (runIproute passes it to every ip and tc the rules start).
// Both exit 2 for any kernel error and print the kernel's strerror after "RTNETLINK answers:" (or "Error:" with
// extended ack), so those first words decide. This file is one of the few the architecture test allows to read text.

import type { Classify, Exec, ExecResult } from '../../exec/exec.js'

const DENIED = /^RTNETLINK answers: Operation not permitted/m
// What was added is there already (EEXIST).
const EXISTS = /^RTNETLINK answers: File exists|^Error: .*File exists/m
// A table that never held a route does not exist for the kernel: `ip route show table N` then fails so.
const NO_TABLE = /FIB table does not exist/

/** classifyIproute: the reason ip or tc failed. Pure. */
export const classifyIproute: Classify = ({ stderr }) => {
  if (DENIED.test(stderr)) return { reason: 'not-permitted' }
  if (EXISTS.test(stderr)) return { reason: 'exists' }
  if (NO_TABLE.test(stderr)) return { reason: 'absent' }
  return { reason: 'refused' }
}

/** runIproute runs ip or tc through the seam with their classify: every one we start for the rules goes through here. */
export const runIproute = (exec: Exec, file: 'ip' | 'tc', args: readonly string[]): Promise<ExecResult> =>
  exec(file, args, undefined, { classify: classifyIproute })
