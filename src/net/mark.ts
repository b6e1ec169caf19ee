// Sockets that carry an SO_MARK from their first packet. Setting the mark after net.connect() is too late (the
// SYN has gone), so the fd is made with libc socket(), marked, and only then handed to Node to connect.
// SO_MARK needs CAP_NET_ADMIN.

import { createRequire } from 'node:module'
import net from 'node:net'

const AF_INET = 2
const AF_INET6 = 10
const SOCK_STREAM = 1
const SOCK_CLOEXEC = 0o2000000
const SOL_SOCKET = 1
const SO_MARK = 36

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number
  setsockopt: (fd: number, level: number, name: number, value: Buffer, length: number) => number
  close: (fd: number) => number
  errno: () => number
}

let libc: Libc | undefined

const loadLibc = (): Libc => {
  if (!libc) {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi')
    const lib = koffi.load('libc.so.6')
    libc = {
      socket: lib.func('int socket(int, int, int)') as Libc['socket'],
      setsockopt: lib.func('int setsockopt(int, int, int, const uint8_t *value, uint32_t length)') as Libc['setsockopt'],
      close: lib.func('int close(int)') as Libc['close'],
      errno: () => koffi.errno(),
    }
  }
  return libc
}

/** markedSocket returns an unconnected socket whose packets will carry `mark`; throws with errno on refusal. */
export const markedSocket = (target: { address: string }, mark: number): net.Socket => {
  const c = loadLibc()
  const fd = c.socket(net.isIPv6(target.address) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
  if (fd < 0) throw new Error(`socket() failed, errno ${c.errno()}`)
  const value = Buffer.alloc(4)
  value.writeUInt32LE(mark >>> 0)
  if (c.setsockopt(fd, SOL_SOCKET, SO_MARK, value, 4) !== 0) {
    const errno = c.errno()
    c.close(fd)
    throw new Error(`setsockopt(SO_MARK) failed, errno ${errno}${errno === 1 ? ' (EPERM: needs CAP_NET_ADMIN)' : ''}`)
  }
  return new net.Socket({ fd, readable: true, writable: true })
}
