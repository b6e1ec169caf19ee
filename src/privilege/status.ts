// /proc/<pid>/status as the kernel reports a process's identity and privileges: what the agent checks before
// starting the proxy, and what the tests read to prove the drop.

import { readFileSync } from 'node:fs'

export const CAP_NET_ADMIN = 12
export const CAP_NET_RAW = 13

export interface ProcessStatus {
  readonly uids: readonly number[]
  readonly gids: readonly number[]
  readonly groups: readonly number[]
  readonly capEff: bigint
  readonly capPrm: bigint
  readonly capInh: bigint
  readonly capAmb: bigint
  readonly capBnd: bigint
  readonly noNewPrivs: boolean
}

/** parseStatus reads the fields above from the text of /proc/<pid>/status. Pure. */
export const parseStatus = (text: string): ProcessStatus => {
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? ''
  const numbers = (name: string): number[] => field(name).split(/\s+/).filter(Boolean).map(Number)
  const caps = (name: string): bigint => BigInt(`0x${field(name) || '0'}`)
  return {
    uids: numbers('Uid'),
    gids: numbers('Gid'),
    groups: numbers('Groups'),
    capEff: caps('CapEff'),
    capPrm: caps('CapPrm'),
    capInh: caps('CapInh'),
    capAmb: caps('CapAmb'),
    capBnd: caps('CapBnd'),
    noNewPrivs: field('NoNewPrivs') === '1',
  }
}

export const readStatus = (pid: number | 'self'): ProcessStatus => parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'))

export const hasCapability = (set: bigint, cap: number): boolean => (set & (1n << BigInt(cap))) !== 0n

const CAP_NAMES: Readonly<Record<number, string>> = { [CAP_NET_ADMIN]: 'net_admin', [CAP_NET_RAW]: 'net_raw' }

const describeCaps = (set: bigint): string => {
  if (set === 0n) return 'none'
  const known = Object.entries(CAP_NAMES).filter(([bit]) => hasCapability(set, Number(bit)))
  const rest = known.reduce((left, [bit]) => left & ~(1n << BigInt(bit)), set)
  return [...known.map(([, name]) => name), ...(rest === 0n ? [] : [`0x${rest.toString(16)}`])].join(',')
}

/** describeStatus is the identity and privileges in `status` on one line, for the log after the drop. Pure. */
export const describeStatus = (s: ProcessStatus): string =>
  [
    `uid ${s.uids.join('/')}`,
    `gid ${s.gids.join('/')}`,
    `groups ${s.groups.join(',') || 'none'}`,
    `capabilities effective ${describeCaps(s.capEff)}, permitted ${describeCaps(s.capPrm)}, inheritable ${describeCaps(s.capInh)}, ambient ${describeCaps(s.capAmb)}, bounding ${describeCaps(s.capBnd)}`,
    `no_new_privs ${s.noNewPrivs ? 'set' : 'not set'}`,
  ].join('; ')

/**
 * appCapabilities: what a process running as the app may do past capture, from its own capability sets. NET_RAW
 * sends whole frames on a packet socket, which no netfilter hook sees; NET_ADMIN changes the rules themselves. In
 * the effective or permitted set the process has them now; in the bounding set only, a program with file
 * capabilities it executes could get them. Pure.
 */
export const appCapabilities = (s: ProcessStatus): string[] => {
  const sets = `effective ${describeCaps(s.capEff)}, permitted ${describeCaps(s.capPrm)}, ambient ${describeCaps(s.capAmb)}, bounding ${describeCaps(s.capBnd)}`
  const risky = [
    [CAP_NET_RAW, 'NET_RAW', 'its packet sockets send TCP that no rule sees'],
    [CAP_NET_ADMIN, 'NET_ADMIN', 'it can change the rules'],
  ] as const
  const notes = risky.flatMap(([cap, name, why]) =>
    hasCapability(s.capEff | s.capPrm | s.capAmb, cap)
      ? [`${name} held: ${why}; a captured app must not have it (drop it in the container's securityContext)`]
      : hasCapability(s.capBnd, cap) && !s.noNewPrivs
        ? [`${name} in the bounding set: a program with file capabilities could get it (${why}); drop it`]
        : [],
  )
  return [sets, ...notes]
}
