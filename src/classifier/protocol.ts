// The classifier's protocol: one JSON line each way. The request names only the classid wanted; who is asking is
// taken from the kernel (SO_PEERCRED), never from the message, so a message cannot name another process.

import { hex } from '../text.js'

export const MAX_REQUEST_BYTES = 512

export interface Request {
  readonly classid: number
}

/** A refusal with `busy` set is for now only: the same request may succeed if sent again a little later. */
export type Reply =
  | { readonly ok: true; readonly classid: number; readonly group: string }
  | { readonly ok: false; readonly error: string; readonly busy?: true }

/** parseRequest validates one request line; returns an error text for anything else. Pure. */
export const parseRequest = (line: string): Request | { readonly error: string } => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return { error: 'the request is not JSON: expected {"classid": N}' }
  }
  const classid = (value as { classid?: unknown } | null)?.classid
  if (typeof classid !== 'number' || !Number.isInteger(classid) || classid < 1 || classid > 0xffffffff) {
    return { error: 'expected {"classid": N} with N a non-zero 32-bit integer' }
  }
  return { classid }
}

export interface Policy {
  readonly uids: readonly number[]
  readonly classids: readonly number[]
}

/** refuseUid says why a peer's UID may not ask at all, or undefined when it may. Pure. */
export const refuseUid = (policy: Policy, peerUid: number): string | undefined =>
  policy.uids.includes(peerUid) ? undefined : `UID ${peerUid} is not an allowed proxy UID (${policy.uids.join(', ')})`

/** decide says why a peer may not have a classid, or undefined when it may. Pure. */
export const decide = (policy: Policy, peerUid: number, classid: number): string | undefined => {
  const uidRefused = refuseUid(policy, peerUid)
  if (uidRefused) return uidRefused
  if (!policy.classids.includes(classid)) return `classid ${hex(classid)} is not allowed (${policy.classids.map(hex).join(', ')})`
  return undefined
}

// kubelet names a pod's cgroup after the pod's UID: pod<uid> (cgroupfs driver) or ...-pod<uid_with_underscores>.slice
// (systemd driver); every container of the pod, and every cgroup it may make below, is under it.
const POD_SEGMENT = /(?:^|[-_])pod[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}(?:\.slice)?$/i

/**
 * peerGroup names the group a peer's connections are counted in, from its /proc/PID/cgroup text: its pod's cgroup
 * where the path shows one, else its own cgroup (v2, else the first v1 hierarchy not at the root; never net_cls,
 * which the classifier itself changes); undefined when every path is the root, which tells peers apart by nothing.
 * Pure.
 */
export const peerGroup = (procCgroup: string): string | undefined => {
  const lines = procCgroup.split('\n').flatMap(l => {
    const m = /^(\d+):([^:]*):(.+)$/.exec(l)
    return m === null || m[2]!.split(',').includes('net_cls') ? [] : [{ v2: m[1] === '0' && m[2] === '', path: m[3]! }]
  })
  // v2 first; on a hybrid host whose v2 tree is unused, the v1 hierarchies hold the pods.
  const path = [...lines.filter(l => l.v2), ...lines.filter(l => !l.v2)].find(l => l.path !== '/')?.path
  if (path === undefined) return undefined
  const segments = path.split('/')
  const pod = segments.findIndex(segment => POD_SEGMENT.test(segment))
  return pod < 0 ? path : segments.slice(0, pod + 1).join('/')
}
