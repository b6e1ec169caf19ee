// A non-root init may be given NET_ADMIN and NET_RAW as file capabilities (setcap on its node binary), as
// Linkerd's proxy-init is. It then holds them, but the iptables and nft it starts would not: exec gives a program
// without file capabilities of its own only the ambient ones. So, once, before the first tool starts, those it holds
// are raised into its inheritable and ambient sets. Capabilities are per thread: this runs on the main thread,
// which is the one child_process forks from. Ambient capabilities given by the caller (setpriv --ambient-caps)
// need nothing; root needs nothing either.

import { EnvironmentError } from '../errors.js'
import { loadLibc } from '../net/libc.js'
import { CAP_NET_ADMIN, CAP_NET_RAW, hasCapability, readStatus, type ProcessStatus } from './status.js'

const PR_CAP_AMBIENT = 47
const PR_CAP_AMBIENT_RAISE = 2
const LINUX_CAPABILITY_VERSION_3 = 0x20080522

/** The capabilities the tools need that `s` holds (permitted) but would not pass on (not ambient). Pure. */
export const toPassOn = (s: ProcessStatus): number[] =>
  [CAP_NET_ADMIN, CAP_NET_RAW].filter(cap => hasCapability(s.capPrm, cap) && !hasCapability(s.capAmb, cap))

/**
 * passOnCapabilities makes NET_ADMIN and NET_RAW, where this non-root process holds them, reach the programs it
 * starts. Returns the ones raised; throws EnvironmentError when the kernel refuses.
 */
export const passOnCapabilities = (): number[] => {
  if ((process.geteuid?.() ?? 0) === 0) return []
  const caps = toPassOn(readStatus('self'))
  if (caps.length === 0) return []
  const libc = loadLibc()
  const header = Buffer.alloc(8)
  header.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0)
  // Two structs of { effective, permitted, inheritable }: capabilities 0-31, then 32-63. Ours are all below 32.
  const data = Buffer.alloc(24)
  if (libc.capget(header, data) !== 0) throw new EnvironmentError(`capget failed (errno ${libc.errno()})`)
  data.writeUInt32LE((data.readUInt32LE(8) | caps.reduce((bits, cap) => bits | (1 << cap), 0)) >>> 0, 8)
  if (libc.capset(header, data) !== 0) throw new EnvironmentError(`capset (inheritable) failed (errno ${libc.errno()})`)
  for (const cap of caps) {
    if (libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) !== 0)
      throw new EnvironmentError(`raising ambient capability ${cap} failed (errno ${libc.errno()})`)
  }
  return caps
}
