// Who asked, by something that cannot be reused: a PID can belong to another process as soon as the asker exits
// and is reaped, a pidfd never does. SO_PEERPIDFD (Linux 6.5) hands one over for the process that connected, as
// of connect(); older kernels get pidfd_open(2) of the SO_PEERCRED PID at accept, which leaves only the window
// between the peer's connect and our accept.

import type net from 'node:net'
import { loadLibc } from './libc.js'
import { socketFd } from './original-dst.js'

const SOL_SOCKET = 1
const SO_PEERPIDFD = 77
const ENOPROTOOPT = 92

export interface Pidfd {
  /** Whether the process it names still exists (has not been reaped), so its PID is still its own. */
  alive(): boolean
  close(): void
}

const wrap = (fd: number): Pidfd => {
  let open = true
  return {
    alive: () => open && loadLibc().pidfdSendSignal(fd, 0) === 0,
    close: () => {
      if (open) loadLibc().close(fd)
      open = false
    },
  }
}

/** peerPidfd takes a pidfd for the peer of a connected unix socket; throws when the peer is already gone. */
export const peerPidfd = (socket: net.Socket, pid: number): Pidfd => {
  const libc = loadLibc()
  const buffer = Buffer.alloc(4)
  if (libc.getsockopt(socketFd(socket), SOL_SOCKET, SO_PEERPIDFD, buffer, [4]) === 0) return wrap(buffer.readInt32LE(0))
  const errno = libc.errno()
  if (errno !== ENOPROTOOPT) throw new Error(`the asker is gone (getsockopt(SO_PEERPIDFD): errno ${errno})`)
  const fd = pid > 0 ? libc.pidfdOpen(pid) : -1
  if (fd < 0) throw new Error(`the asker is gone (pidfd_open(${pid}): errno ${libc.errno()})`)
  return wrap(fd)
}
