// SO_PEERCRED: who is at the other end of a unix socket, as the kernel recorded it when the peer connected. The
// classifier trusts this and nothing in the message. Node has no API for it (see libc.ts).

import type net from 'node:net'
import { loadLibc } from './libc.js'
import { socketFd } from './original-dst.js'

const SOL_SOCKET = 1
const SO_PEERCRED = 17

export interface PeerCredentials {
  readonly pid: number
  readonly uid: number
  readonly gid: number
}

/** peerCredentials reads struct ucred { pid, uid, gid } of a connected unix socket; throws if it cannot. */
export const peerCredentials = (socket: net.Socket): PeerCredentials => {
  const buffer = Buffer.alloc(12)
  if (loadLibc().getsockopt(socketFd(socket), SOL_SOCKET, SO_PEERCRED, buffer, [12]) !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) failed, errno ${loadLibc().errno()}`)
  }
  return { pid: buffer.readInt32LE(0), uid: buffer.readUInt32LE(4), gid: buffer.readUInt32LE(8) }
}
