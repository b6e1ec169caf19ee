// The classifier's protocol: one JSON line each way. The request names only the classid wanted; who is asking is
// taken from the kernel (SO_PEERCRED), never from the message, so a message cannot name another process.

import { hex } from '../text.js'

export const MAX_REQUEST_BYTES = 512

export interface Request {
  readonly classid: number
}

export type Reply = { readonly ok: true; readonly classid: number; readonly group: string } | { readonly ok: false; readonly error: string }

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
