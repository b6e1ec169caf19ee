// How iptables(-legacy|-nft)-save/-restore and ipset fail, told apart once, where the seam hands back a failure
// (runIptables and runIpset pass their classify to every one we start). iptables exits by kind (1 other, 2
// parameter, 4 resource) but a missing right and the lock share 4, and ipset exits 1 for all, so their own first
// words decide. One of the few files the architecture test lets read a tool's text (LC_ALL=C keeps it English).

import type { Classified, Classify, Exec, ExecResult } from '../../exec/exec.js'

// iptables' RESOURCE_PROBLEM: it exits 4 for a missing right (with EPERM's or EACCES's words) and for the lock.
const RESOURCE_PROBLEM = 4
const DENIED = /Permission denied|Operation not permitted/

// Legacy iptables serialises writers with a host-wide flock; -w gave up waiting for it. Busy, not refused.
const XTABLES_LOCK_BUSY = /holding the xtables lock/

// The userspace extension is missing ("Couldn't load match `cgroup'") or the kernel lacks its module ("Extension
// cgroup revision 0 not supported, missing kernel module?"). Both are about the environment, not the plan.
const MISSING_EXTENSION = /Couldn't load (?:match|target) `([\w-]+)'|Extension ([\w-]+) revision \d+ not supported/

// iptables-restore says "line N failed", or "Error occurred at line: N" after the reason.
const BLAMED_LINE = /line:? (\d+)/

const blamed = (stderr: string): Pick<Classified, 'line'> => {
  const found = BLAMED_LINE.exec(stderr)?.[1]
  return found === undefined ? {} : { line: Number(found) }
}

/** classifyIptables: the reason an iptables tool failed, and the restore line it blamed. Pure. */
export const classifyIptables: Classify = ({ exitCode, stderr }) => {
  if (exitCode === RESOURCE_PROBLEM && DENIED.test(stderr)) return { reason: 'not-permitted' }
  if (XTABLES_LOCK_BUSY.test(stderr)) return { reason: 'busy' }
  const missing = MISSING_EXTENSION.exec(stderr)
  const extension = missing?.[1] ?? missing?.[2]
  if (extension !== undefined) return { reason: 'missing-extension', subject: extension, ...blamed(stderr) }
  return { reason: 'refused', ...blamed(stderr) }
}

// ipset's kernel errors come as "ipset v7.x: Kernel error received: <strerror>" at the start of a line; a word in a
// set's comment, quoted back inside another error, cannot.
const IPSET_DENIED = /^ipset v[\d.]+: Kernel error received: Operation not permitted/m

/** classifyIpset: the reason ipset failed. Pure. */
export const classifyIpset: Classify = ({ stderr }) => (IPSET_DENIED.test(stderr) ? { reason: 'not-permitted' } : { reason: 'refused' })

/** runIptables runs one iptables program (`file`, e.g. iptables-legacy-save) through the seam with its classify. */
export const runIptables = (exec: Exec, file: string, args: readonly string[], input?: string): Promise<ExecResult> =>
  exec(file, args, input, { classify: classifyIptables })

/** runIpset runs ipset through the seam with its classify: every ipset we start goes through here. */
export const runIpset = (exec: Exec, args: readonly string[], input?: string): Promise<ExecResult> =>
  exec('ipset', args, input, { classify: classifyIpset })
