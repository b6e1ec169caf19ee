// Sockets whose identity is fixed before their first packet. Netfilter's owner match reads the credentials the
// socket file was created with, the mark match reads SO_MARK, and the cgroup match reads the classid taken at
// creation, all on the SYN: so the fd is made here with libc socket() (under whatever identity the caller has
// assumed), marked if asked, and only then handed to Node to connect. Node itself creates its fd lazily, inside
// connect, too late to control. SO_MARK needs CAP_NET_ADMIN.

import net from 'node:net'
import { loadLibc } from './libc.js'

const AF_INET = 2
const AF_INET6 = 10
const SOCK_STREAM = 1
const SOCK_CLOEXEC = 0o2000000
const SOL_SOCKET = 1
const SO_MARK = 36

export interface SocketOptions {
  readonly mark?: number
}

/** openSocket returns an unconnected TCP socket for `address`'s family; throws with errno on refusal. */
export const openSocket = (address: string, options: SocketOptions = {}): net.Socket => {
  const libc = loadLibc()
  const fd = libc.socket(net.isIPv6(address) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
  if (fd < 0) throw new Error(`socket() failed, errno ${libc.errno()}`)
  if (options.mark !== undefined) {
    const value = Buffer.alloc(4)
    value.writeUInt32LE(options.mark >>> 0)
    if (libc.setsockopt(fd, SOL_SOCKET, SO_MARK, value, 4) !== 0) {
      const errno = libc.errno()
      libc.close(fd)
      throw new Error(`setsockopt(SO_MARK) failed, errno ${errno}${errno === 1 ? ' (EPERM: SO_MARK needs CAP_NET_ADMIN)' : ''}`)
    }
  }
  return new net.Socket({ fd, readable: true, writable: true })
}
