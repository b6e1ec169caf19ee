// `ready` against real listeners on loopback: it fails while nothing listens, passes once something does, on
// either family, and gives up within its bound.
import net from 'node:net'
import t, { type Test } from 'tap'
import { waitForProxy } from '../../../src/commands/ready.js'
import { NotReadyError } from '../../../src/errors.js'
import { realIo } from '../../../src/io.js'
import { run } from '../../../src/main.js'

const now = (): number => performance.now()

const listen = async (t: Test, host: string, port = 0): Promise<number> => {
  const server = net.createServer(socket => socket.destroy())
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host, port, ipv6Only: host === '::1' }, resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  return (server.address() as net.AddressInfo).port
}

// A port nothing listens on now: one the kernel handed out and that was closed again.
const freePort = async (): Promise<number> => {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

const runReady = async (env: Record<string, string>): Promise<{ code: number; output: string }> => {
  let output = ''
  const io = { ...realIo(), out: { write: (s: string) => void (output += s), error: (s: string) => void (output += s) } }
  return { code: await run(['ready'], env, io), output }
}

t.test('fails while nothing listens, within its bound, naming the port and both settings', async t => {
  const port = await freePort()
  const started = now()
  await t.rejects(
    waitForProxy(port, 500, now),
    new NotReadyError(`nothing accepted a connection on port ${port} (ISTIO_PROXY_PORT) within 0.5 s (ISTIO_READY_SECONDS)`),
  )
  const took = now() - started
  t.ok(took >= 400 && took < 3000, `gave up after ${Math.round(took)} ms, close to its 500 ms bound`)
})

t.test('passes once the proxy listens, after failed attempts', async t => {
  const port = await freePort()
  const waiting = waitForProxy(port, 10_000, now)
  await new Promise(resolve => setTimeout(resolve, 400))
  await listen(t, '127.0.0.1', port)
  const attempts = await waiting
  t.ok(attempts > 1, `ready after ${attempts} attempts, not at the first`)
})

t.test('a proxy listening on IPv6 loopback only counts too', async t => {
  t.equal(await waitForProxy(await listen(t, '::1'), 1000, now), 1)
})

t.test('the ready command: exit 0 with a listener, exit 8 (E_NOT_READY) without one', async t => {
  const port = await listen(t, '127.0.0.1')
  const ok = await runReady({ ISTIO_PROXY_PORT: String(port), ISTIO_READY_SECONDS: '1' })
  t.equal(ok.code, 0, ok.output)
  t.match(ok.output, `the proxy accepts connections on port ${port}`)
  const none = await freePort()
  const refused = await runReady({ ISTIO_PROXY_PORT: String(none), ISTIO_READY_SECONDS: '0' })
  t.equal(refused.code, 8, refused.output)
  t.match(refused.output, /E_NOT_READY/)
  const bad = await runReady({ ISTIO_READY_SECONDS: 'soon' })
  t.equal(bad.code, 2, 'a bad ISTIO_READY_SECONDS is refused')
  t.match(bad.output, 'ISTIO_READY_SECONDS="soon" is not valid: expected whole seconds from 0 to 3600')
})
