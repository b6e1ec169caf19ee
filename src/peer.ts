// A tiny traffic peer for the demo and the tests, started inside a network namespace. `serve` answers every
// connection with a JSON line naming which listener got it and the connection's SO_ORIGINAL_DST; `connect` dials
// and prints the answer; `proxy` is a minimal transparent proxy that relays to the original destination;
// `classify` and `send` talk to the node classifier as a well-behaved and as a misbehaving client, `flood` as
// many silent ones, and `hand-off` as an asker whose PID is free for reuse while its connection lives on.
// Traffic decides: whatever the rules say, these report where packets really went.

import net from 'node:net'
import { networkInterfaces } from 'node:os'
import { parseArgs } from 'node:util'
import { originalDestination } from './net/original-dst.js'
import { listenFd, openSocket } from './net/socket.js'
import { sendRawSyn } from './net/raw-syn.js'
import { netClsPath } from './cgroup/net-cls.js'
import { requestClassification } from './classifier/client.js'
import { spawnWithChannel } from './exec/ipc-child.js'

const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`)

const describe = (label: string, socket: net.Socket) => ({
  label,
  local: `${socket.localAddress}:${socket.localPort}`,
  from: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
  originalDst: originalDestination(socket) ?? null,
})

/**
 * Listens on each `label=host:port`; every connection gets one JSON line, echoed to stdout too. `transparent`
 * listens on the port in both families with IP_TRANSPARENT instead, as a TPROXY proxy must (the host is ignored).
 */
const serve = async (specs: readonly string[], transparent: boolean): Promise<void> => {
  await Promise.all(
    specs.flatMap(spec => {
      const [label = '', endpoint = ''] = spec.split('=')
      const at = endpoint.lastIndexOf(':')
      const host = endpoint.slice(0, at).replace(/^\[|\]$/g, '')
      const port = Number(endpoint.slice(at + 1))
      const answer = (socket: net.Socket): void => {
        // A client that gave up resets the connection: that is its business, not a reason for the listener to die.
        socket.on('error', () => undefined)
        const report = describe(label, socket)
        print(report)
        socket.end(`${JSON.stringify(report)}\n`)
      }
      if (!transparent) return [new Promise<void>(resolve => net.createServer(answer).listen({ host, port }, resolve))]
      return (['ipv4', 'ipv6'] as const).map(
        family => new Promise<void>(resolve => net.createServer(answer).listen({ fd: listenFd(family, port, { transparent: true }) }, resolve)),
      )
    }),
  )
  print({ ready: true })
}

/**
 * Dials each `host:port` (or `host:port@from`, bound to that source) one after another and prints one JSON line per
 * target, `{ target, ok, reply }` or `{ target, ok: false, error }`: many connections for one process start.
 */
const connectMany = async (targets: readonly string[], timeoutMs: number): Promise<void> => {
  for (const target of targets) {
    const [endpoint = '', from] = target.split('@')
    const at = endpoint.lastIndexOf(':')
    const host = endpoint.slice(0, at).replace(/^\[|\]$/g, '')
    const line = await new Promise<Record<string, unknown>>(resolve => {
      const socket = net.connect({ host, port: Number(endpoint.slice(at + 1)), ...(from && { localAddress: from }) })
      let reply = ''
      socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      socket.on('data', chunk => (reply += String(chunk)))
      socket.on('end', () => {
        try {
          resolve({ target, ok: true, reply: JSON.parse(reply) as unknown })
        } catch {
          resolve({ target, ok: false, error: `unexpected answer ${JSON.stringify(reply)}` })
        }
      })
      socket.on('error', error => resolve({ target, ok: false, error: error.message }))
    })
    print(line)
  }
}

const connect = (host: string, port: number, from: string | undefined, timeoutMs: number, device?: string): void => {
  // Bound to a device, the socket is made with libc (Node cannot set SO_BINDTODEVICE) before it connects.
  const socket =
    device === undefined ? net.connect({ host, port, ...(from && { localAddress: from }) }) : openSocket(host, { device }).connect({ host, port })
  let reply = ''
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)))
  socket.on('data', chunk => (reply += String(chunk)))
  socket.on('end', () => print({ ok: true, reply: JSON.parse(reply) as unknown }))
  socket.on('error', error => {
    print({ ok: false, error: error.message })
    process.exitCode = 1
  })
}

const ownAddresses = (): Set<string> => new Set(Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(i => i.address)))

/**
 * Accepts redirected connections on each port and relays each to its original destination, marking the upstream if
 * asked. A connection taken on the `passthrough` port (Istio's inbound 15006) is relayed from 127.0.0.6 (::6), as
 * Envoy's inbound passthrough binds it, so Istio's rules let the relay through instead of redirecting it again.
 */
const proxy = (ports: readonly number[], mark: number | undefined, passthrough: number | undefined): void => {
  const relay = (port: number) => (downstream: net.Socket) => {
    // A client that resets (the readiness probe, `entrypoint ready`, closes as soon as it connects) must not take
    // the relay down with an unhandled ECONNRESET: that failed the app's first connection now and then.
    downstream.on('error', () => downstream.destroy())
    const target = originalDestination(downstream)
    if (!target) {
      downstream.end(`${JSON.stringify({ label: 'proxy', error: 'not a redirected connection' })}\n`)
      return
    }
    // A connection to this very port on one of the pod's own addresses is meant for the proxy itself (the
    // kubelet's TCP probe, redirected inbound to the same port): answered, not relayed back to itself.
    if (target.port === port && ownAddresses().has(target.address)) {
      downstream.end()
      return
    }
    const v6 = target.address.includes(':')
    const options = { host: target.address, port: target.port, ...(port === passthrough && { localAddress: v6 ? '::6' : '127.0.0.6' }) }
    print({ relayed: { from: (downstream.remoteAddress ?? '').replace(/^::ffff:/, ''), to: `${target.address}:${target.port}` } })
    const upstream = mark === undefined ? net.connect(options) : openSocket(target.address, { mark }).connect(options)
    downstream.pipe(upstream).pipe(downstream)
    const close = (): void => {
      downstream.destroy()
      upstream.destroy()
    }
    upstream.on('error', close)
    downstream.on('error', close)
  }
  let listening = 0
  for (const port of ports) {
    net.createServer(relay(port)).listen({ host: '::', port }, () => {
      if (++listening === ports.length) print({ ready: true, pid: process.pid })
    })
  }
}

/** Asks the classifier for `classid`, prints the outcome and this process's net_cls path, then connects if asked. */
const classify = async (socketPath: string, classid: number, then: string | undefined, netClsRoot: string | undefined): Promise<void> => {
  const started = performance.now()
  const outcome = await requestClassification(socketPath, classid, netClsRoot).then(
    group => ({ ok: true, group }),
    (error: Error) => ({ ok: false, error: error.message }),
  )
  print({ ...outcome, ms: Math.round(performance.now() - started), path: (await netClsPath('self')) ?? null, pid: process.pid })
  if (then) connect(then.slice(0, then.lastIndexOf(':')), Number(then.slice(then.lastIndexOf(':') + 1)), undefined, 2000)
}

/** Makes `count` connections one after another and prints how many landed where: no moment may be missed. */
const loop = async (host: string, port: number, count: number): Promise<void> => {
  const landed: Record<string, number> = {}
  for (let i = 0; i < count; i++) {
    const label = await new Promise<string>(resolve => {
      const socket = net.connect({ host, port })
      let reply = ''
      // Bounds a hang only: on a loaded machine a starved client may run its timer before reading a reply that came.
      socket.setTimeout(30_000, () => socket.destroy(new Error('timeout')))
      socket.on('data', chunk => (reply += String(chunk)))
      socket.on('end', () => resolve((JSON.parse(reply) as { label?: string }).label ?? 'unknown'))
      socket.on('error', error => resolve(`error: ${error.message}`))
    })
    landed[label] = (landed[label] ?? 0) + 1
  }
  print({ landed })
}

/** Sends raw text to a unix socket (optionally without closing) and prints whatever comes back. */
const send = (socketPath: string, text: string, keepOpen: boolean): void => {
  const socket = net.connect(socketPath)
  let reply = ''
  socket.on('connect', () => (keepOpen ? socket.write(text) : socket.end(text)))
  socket.on('data', chunk => (reply += String(chunk)))
  socket.on('close', () => print({ reply: reply.trim() }))
  socket.on('error', error => print({ error: error.message }))
}

/**
 * Opens `count` connections at once and sends nothing on them, never closing one itself; a connect refused
 * because the listen queue is full is retried. Prints how they ended once all have; with `renew`, each one that
 * ends is opened again, so the flood holds as many as it can until it is killed.
 */
const flood = (socketPath: string, count: number, renew: boolean): void => {
  const ended = { answered: 0, failed: 0 }
  let pending = count
  let retries = 0
  const open = (): void => {
    const socket = net.connect(socketPath)
    let reply = ''
    let retry = false
    socket.on('data', chunk => (reply += String(chunk)))
    socket.on('error', (error: NodeJS.ErrnoException) => {
      retry = error.code === 'EAGAIN'
    })
    socket.on('close', () => {
      if (retry) {
        retries++
        setTimeout(open, 10)
        return
      }
      ended[reply.includes('"ok":false') ? 'answered' : 'failed'] += 1
      if (renew) return void setImmediate(open)
      if (--pending === 0) print({ ...ended, retries })
    })
  }
  for (let i = 0; i < count; i++) open()
  print({ flooding: count })
}

/**
 * Connects, hands the connected socket to a child and exits: the connection's credentials name a PID that is free
 * again once this process is reaped. The child is started first and gets the socket over its IPC channel, so the
 * request's clock (the classifier's deadline) starts only when the slow part, a Node start, is over. The child
 * sends the request when it gets SIGUSR1.
 */
const handOff = (socketPath: string, classid: number): void => {
  const child = spawnWithChannel(process.execPath, [process.argv[1] ?? '', 'hold', String(classid)])
  child.once('message', () => {
    const socket = net.connect(socketPath)
    socket.on('connect', () => {
      child.send('socket', socket)
      child.once('message', () => {
        print({ asker: process.pid, holder: child.pid })
        process.exit(0)
      })
    })
  })
}

const hold = (classid: number): void => {
  process.once('message', (_message, handle) => {
    const socket = handle as net.Socket
    let reply = ''
    socket.on('data', chunk => (reply += String(chunk)))
    socket.on('close', () => print({ reply: reply.trim() }))
    process.on('SIGUSR1', () => socket.write(`${JSON.stringify({ classid })}\n`))
    print({ holding: process.pid })
    process.send?.('holding')
    // The parent's exit closes the channel; the socket alone keeps this process alive.
    process.channel?.unref()
  })
  process.send?.('ready')
}

const main = (): void => {
  // As a container's PID 1, Node ignores signals it has no handler for; stop at once when asked.
  process.on('SIGTERM', () => process.exit(143))
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      from: { type: 'string' },
      device: { type: 'string' },
      timeout: { type: 'string', default: '2000' },
      mark: { type: 'string' },
      connect: { type: 'string' },
      repeat: { type: 'string', default: '1' },
      'keep-open': { type: 'boolean', default: false },
      transparent: { type: 'boolean', default: false },
      passthrough: { type: 'string' },
      'net-cls-root': { type: 'string' },
      renew: { type: 'boolean', default: false },
    },
  })
  const [verb, ...rest] = positionals
  if (verb === 'serve') void serve(rest, values.transparent)
  else if (verb === 'connect') connect(rest[0] ?? '', Number(rest[1]), values.from, Number(values.timeout), values.device)
  else if (verb === 'connect-many') void connectMany(rest, Number(values.timeout))
  else if (verb === 'proxy')
    proxy(
      rest.map(Number),
      values.mark === undefined ? undefined : Number(values.mark),
      values.passthrough === undefined ? undefined : Number(values.passthrough),
    )
  else if (verb === 'classify') void classify(rest[0] ?? '', Number(rest[1]), values.connect, values['net-cls-root'])
  else if (verb === 'loop') void loop(rest[0] ?? '', Number(rest[1]), Number(rest[2]))
  else if (verb === 'flood') flood(rest[0] ?? '', Number(rest[1]), values.renew)
  else if (verb === 'hand-off') handOff(rest[0] ?? '', Number(rest[1]))
  else if (verb === 'hold') hold(Number(rest[0]))
  else if (verb === 'raw-syn') {
    // raw-syn DEVICE MAC FROM TO PORT: one SYN on a packet socket, past every netfilter hook.
    const [device = '', mac = '', from = '', to = '', port = '0'] = rest
    try {
      sendRawSyn(device, mac, from, to, Number(port))
      print({ ok: true })
    } catch (error) {
      print({ ok: false, error: (error as Error).message })
      process.exitCode = 1
    }
  } else if (verb === 'send') send(rest[0] ?? '', (rest[1] ?? '').repeat(Number(values.repeat)).replace(/\\n/g, '\n'), values['keep-open'])
  else {
    process.stderr.write(
      'usage: peer serve [--transparent] label=host:port... | connect host port [--from addr] [--device name] | connect-many host:port[@from]...\n' +
        '       | proxy port... [--mark n] [--passthrough port]\n' +
        '       | classify socket classid [--connect host:port] [--net-cls-root dir] | send socket text [--repeat n] [--keep-open]\n' +
        '       | flood socket count [--renew] | hand-off socket classid | raw-syn device mac from to port\n',
    )
    process.exitCode = 2
  }
}

main()
