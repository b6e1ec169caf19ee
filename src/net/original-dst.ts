// SO_ORIGINAL_DST: where a REDIRECTed connection was headed before NAT. Node has no API for it, so libc's
// getsockopt is called (see libc.ts). The fd of a net.Socket is `_handle.fd`: undocumented, but stable across Node releases.

import type net from 'node:net'
import { formatIpv6 } from '../settings/cidr.js'
import { loadLibc } from './libc.js'

const SOL_IP = 0
const SOL_IPV6 = 41
const SO_ORIGINAL_DST = 80 // IP6T_SO_ORIGINAL_DST has the same number

export interface Endpoint {
  readonly address: string
  readonly port: number
}

export const socketFd = (socket: net.Socket): number => {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor')
  return fd
}

/**
 * originalDestination returns where the connection was addressed before REDIRECT, or undefined when it was not
 * redirected (with conntrack active the kernel then answers with the socket's own local address).
 */
export const originalDestination = (socket: net.Socket): Endpoint | undefined => {
  const v6 = socket.localAddress?.includes(':') && !socket.localAddress.startsWith('::ffff:')
  const buffer = Buffer.alloc(v6 ? 28 : 16)
  const status = loadLibc().getsockopt(socketFd(socket), v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, buffer, [buffer.length])
  if (status !== 0) return undefined
  const port = buffer.readUInt16BE(2)
  const address = v6 ? formatIpv6([...buffer.subarray(8, 24)]) : [...buffer.subarray(4, 8)].join('.')
  const local = (socket.localAddress ?? '').replace(/^::ffff:/, '')
  return address === local && port === socket.localPort ? undefined : { address, port }
}
