// The live probe's sockets, made with libc and handed to Node: real sockets on loopback, no root needed.
import net from 'node:net'
import t from 'tap'
import { connectSocket, listenFd } from '../../../src/net/socket.js'

const serve = (fd: number, answer: string): Promise<net.Server> =>
  new Promise(resolve => {
    const server = net.createServer(socket => socket.end(answer))
    server.listen({ fd }, () => resolve(server))
  })

const portOf = (server: net.Server): number => (server.address() as net.AddressInfo).port

const answerTo = (socket: net.Socket): Promise<string> =>
  new Promise((resolve, reject) => {
    let text = ''
    socket.on('data', chunk => (text += String(chunk)))
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })

const close = (server: net.Server): Promise<void> => new Promise(resolve => server.close(() => resolve()))

const ipv6 = net.createServer().listen({ port: 0, host: '::1' })
const hasIpv6 = await new Promise<boolean>(resolve => {
  ipv6.once('listening', () => ipv6.close(() => resolve(true)))
  ipv6.once('error', () => resolve(false))
})

t.test('a connection started by connect(2) is answered through Node, in both families, on one port', async t => {
  const v4 = await serve(listenFd('ipv4', 0), 'four\n')
  const port = portOf(v4)
  t.equal(await answerTo(connectSocket('127.0.0.1', port)), 'four\n')
  if (hasIpv6) {
    // The IPv6 listener is IPv6 only, so both families can hold the same port, as the probe's proxy listeners do.
    const v6 = await serve(listenFd('ipv6', port), 'six\n')
    t.equal(await answerTo(connectSocket('::1', port)), 'six\n')
    t.equal(await answerTo(connectSocket('127.0.0.1', port)), 'four\n', 'IPv4 still reaches the IPv4 listener')
    await close(v6)
  }
  await close(v4)
})

t.test('a taken port, a refused connection and a name instead of an address are errors', async t => {
  const taken = await serve(listenFd('ipv4', 0), '')
  const port = portOf(taken)
  t.throws(() => listenFd('ipv4', port), /listen EADDRINUSE 0\.0\.0\.0:\d+/)
  await close(taken)
  // Nothing listens there now: the refusal comes back as Node's error event, as for its own connect.
  await t.rejects(answerTo(connectSocket('127.0.0.1', port)), { code: 'ECONNREFUSED' })
  t.throws(() => connectSocket('localhost', port), /"localhost" is not an IP address/)
  t.throws(() => connectSocket('2001:db8::zz', port), /"2001:db8::zz" is not an IP address/)
})
