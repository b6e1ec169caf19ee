// Helper for bench/services.mjs, run inside the benchmark's namespace: a listener on the proxy port, then
// `count` sequential connections to host:port, and the rate at which they landed on the listener.
import net from 'node:net'

const [host, port, count, proxyPort] = process.argv.slice(2)
const server = net.createServer(socket => socket.end('p'))
await new Promise(resolve => server.listen({ port: Number(proxyPort), host: '0.0.0.0' }, resolve))
let landed = 0
const start = performance.now()
for (let i = 0; i < Number(count); i++) {
  await new Promise(resolve => {
    const socket = net.connect({ host, port: Number(port) })
    socket.setTimeout(1000, () => socket.destroy())
    socket.on('data', () => landed++)
    socket.on('close', resolve)
    socket.on('error', () => undefined)
  })
}
const seconds = (performance.now() - start) / 1000
server.close()
console.log(JSON.stringify({ landed, rate: Math.round(Number(count) / seconds) }))
