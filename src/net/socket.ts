// Sockets whose identity is fixed before their first packet. Netfilter's owner match reads the credentials the
// socket file was created with, the mark match reads SO_MARK, and the cgroup match reads the classid taken at
// creation, all on the SYN: so the fd is made here with libc socket() (under whatever identity the caller has
// assumed), marked if asked, and only then handed to Node, to connect (openSocket) or connected (connectSocket).
// Node itself creates its fd lazily, inside connect, too late to control. SO_MARK needs CAP_NET_ADMIN.

import net from 'node:net'
import { getSystemErrorName } from 'node:util'
import { parseIpv4, parseIpv6 } from '../settings/cidr.js'
import { loadLibc } from './libc.js'

const AF_INET = 2
const AF_INET6 = 10
const SOCK_STREAM = 1
const SOCK_CLOEXEC = 0o2000000
const SOCK_NONBLOCK = 0o4000
const EINPROGRESS = 115
const SOL_SOCKET = 1
const SO_REUSEADDR = 2
const SO_MARK = 36
const SO_BINDTODEVICE = 25
const IPPROTO_IPV6 = 41
const IPV6_V6ONLY = 26
const SOL_IP = 0
const IP_TRANSPARENT = 19
const IPV6_TRANSPARENT = 75

export interface SocketOptions {
  readonly mark?: number
  /** SO_BINDTODEVICE: the socket sends only through this interface (no capability needed since Linux 5.7). */
  readonly device?: string
  /** The local address to bind before connecting (e.g. 127.0.0.6, as a proxy's passthrough does). */
  readonly from?: string
}

const isV6 = (address: string): boolean => address.includes(':')

// errno as Node names it (ECONNREFUSED), as its own socket errors do.
const errnoName = (errno: number): string => (errno > 0 ? getSystemErrorName(-errno) : `errno ${errno}`)

/** Hands a socket fd to Node, closing it if Node will not take it. */
const adopt = (fd: number): net.Socket => {
  try {
    return new net.Socket({ fd, readable: true, writable: true })
  } catch (error) {
    loadLibc().close(fd)
    throw error
  }
}

/** setsockopt with a 32-bit value (a flag's 1, or SO_MARK's mark); false when refused (errno says why). */
const setInt = (fd: number, level: number, name: number, value: number): boolean => {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32LE(value >>> 0)
  return loadLibc().setsockopt(fd, level, name, bytes, 4) === 0
}

/** openSocket returns an unconnected TCP socket for `address`'s family; throws with errno on refusal. */
export const openSocket = (address: string, options: SocketOptions = {}): net.Socket => adopt(socketFd(address, options, 0))

/** The struct sockaddr_in or sockaddr_in6 of an IP address literal and a port. */
const sockaddr = (address: string, port: number): Buffer => {
  const v6 = isV6(address)
  const bytes = v6 ? parseIpv6(address) : parseIpv4(address)
  if (bytes === undefined) throw new Error(`${JSON.stringify(address)} is not an IP address`)
  const addr = Buffer.alloc(v6 ? 28 : 16)
  addr.writeUInt16LE(v6 ? AF_INET6 : AF_INET, 0)
  addr.writeUInt16BE(port, 2)
  Buffer.from(bytes).copy(addr, v6 ? 8 : 4)
  return addr
}

/**
 * connectSocket is openSocket connected to address:port by connect(2) itself, without waiting: the socket is
 * Node's once the connection is under way, and it reads the answer (or the refusal) as it comes. Node's own
 * connect would first test the address against its IPv6 pattern, which V8 compiles on first use: more than a whole
 * probe connection costs (docs/performance.md). `address` is an IP literal.
 */
export const connectSocket = (address: string, port: number, options: SocketOptions = {}): net.Socket => {
  const libc = loadLibc()
  const to = sockaddr(address, port)
  const fd = socketFd(address, options, SOCK_NONBLOCK)
  const local = options.from === undefined ? undefined : sockaddr(options.from, 0)
  if (local && libc.bind(fd, local, local.length) !== 0) {
    const errno = libc.errno()
    libc.close(fd)
    throw new Error(`bind ${errnoName(errno)} ${options.from}`)
  }
  if (libc.connect(fd, to, to.length) !== 0 && libc.errno() !== EINPROGRESS) {
    const errno = libc.errno()
    libc.close(fd)
    throw new Error(`connect ${errnoName(errno)} ${isV6(address) ? `[${address}]` : address}:${port}`)
  }
  return adopt(fd)
}

const socketFd = (address: string, options: SocketOptions, flags: number): number => {
  const libc = loadLibc()
  const fd = libc.socket(isV6(address) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0)
  if (fd < 0) throw new Error(`socket() failed: ${errnoName(libc.errno())}`)
  if (options.mark !== undefined) {
    if (!setInt(fd, SOL_SOCKET, SO_MARK, options.mark)) {
      const errno = libc.errno()
      libc.close(fd)
      throw new Error(`setsockopt(SO_MARK) failed: ${errnoName(errno)}${errno === 1 ? ' (SO_MARK needs CAP_NET_ADMIN)' : ''}`)
    }
  }
  if (options.device !== undefined) {
    const name = Buffer.from(`${options.device}\0`)
    if (libc.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length) !== 0) {
      const errno = libc.errno()
      libc.close(fd)
      throw new Error(`setsockopt(SO_BINDTODEVICE ${options.device}) failed: ${errnoName(errno)}`)
    }
  }
  return fd
}

/**
 * listenFd returns a listening TCP socket on the wildcard address of one family (IPv6 only for ipv6), for
 * net.Server's listen({ fd }); port 0 takes a free one. Node's listen with a host would test the host against its
 * IPv6 pattern (see connectSocket). Throws naming the errno, EADDRINUSE when the port is taken. `transparent`
 * sets IP_TRANSPARENT (IPV6_TRANSPARENT), which TPROXY's diverted connections need.
 */
export const listenFd = (family: 'ipv4' | 'ipv6', port: number, options: { readonly transparent?: boolean } = {}): number => {
  const libc = loadLibc()
  const any = family === 'ipv4' ? '0.0.0.0' : '::'
  const at = sockaddr(any, port)
  const fd = socketFd(any, {}, SOCK_NONBLOCK)
  const ok =
    setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1) &&
    (family === 'ipv4' || setInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) &&
    // A TPROXY target only hands packets to a transparent listener (CAP_NET_ADMIN).
    (!options.transparent || (family === 'ipv4' ? setInt(fd, SOL_IP, IP_TRANSPARENT, 1) : setInt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1))) &&
    libc.bind(fd, at, at.length) === 0 &&
    libc.listen(fd, 511) === 0
  if (!ok) {
    const errno = libc.errno()
    libc.close(fd)
    throw new Error(`listen ${errnoName(errno)} ${family === 'ipv4' ? any : `[${any}]`}:${port}`)
  }
  return fd
}
