// Whether this namespace's kernel has IPv6 at all, asked of the kernel itself: an AF_INET6 socket can be bound
// unless IPv6 is compiled out or disabled at boot (EAFNOSUPPORT). Used when /proc cannot tell.

import { createSocket } from 'node:dgram'

export const canOpenIpv6 = (): Promise<boolean> =>
  new Promise((resolve, reject) => {
    const socket = createSocket({ type: 'udp6', ipv6Only: true })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.close()
      if (error.code === 'EAFNOSUPPORT') resolve(false)
      else reject(error)
    })
    socket.bind(0, '::', () => {
      socket.close()
      resolve(true)
    })
  })
