// The static forwarder (dist/cni/sidecar-redirect) against a scripted node agent on a unix socket, as a runtime
// runs it (no root): whatever goes wrong, the runtime reads the spec's error object on stdout and exit status 1,
// never a signal death or a request silently cut.
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { execa } from 'execa'
import t, { type Test } from 'tap'

const PLUGIN = new URL('../../../dist/cni/sidecar-redirect', import.meta.url).pathname
const LIMIT = 1 << 20

interface Agent {
  readonly socket: string
  /** How many connections it got, and how many request bytes it read before acting. */
  readonly seen: { connections: number; bytes: number }
}

/** An agent that reads `readBytes` of each request (then acts) and then drops it, or answers `reply`. */
const agent = async (t: Test, behaviour: { readBytes: number; reply?: Buffer }): Promise<Agent> => {
  const dir = mkdtempSync(`${tmpdir()}/sr-fwd-`)
  const socket = `${dir}/agent.sock`
  const seen = { connections: 0, bytes: 0 }
  const server = net.createServer(connection => {
    seen.connections += 1
    let got = 0
    const act = (): void => {
      if (behaviour.reply) connection.end(behaviour.reply)
      else connection.destroy()
    }
    if (behaviour.readBytes === 0) return act()
    connection.on('data', chunk => {
      got += chunk.length
      seen.bytes = got
      if (got >= behaviour.readBytes) {
        connection.pause()
        act()
      }
    })
    connection.on('end', act)
    connection.on('error', () => undefined)
  })
  await new Promise<void>(resolve => server.listen(socket, resolve))
  t.teardown(() => {
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { socket, seen }
}

const run = (stdin: string | Buffer, env: Record<string, string> = {}) =>
  execa(PLUGIN, [], {
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/nonexistent', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...env },
    extendEnv: false,
    input: stdin,
    reject: false,
    stripFinalNewline: false,
  })

/** A config of exactly `size` bytes: padding in a field the forwarder skips. */
const configOf = (socket: string, size: number): string => {
  const head = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'sidecar-redirect', agentSocket: socket, pad: '' })
  return `${head.slice(0, -2)}${'x'.repeat(size - head.length)}"}`
}

const expectError = (t: Test, result: Awaited<ReturnType<typeof run>>, code: number, msg: RegExp): void => {
  t.equal(result.signal, undefined, 'no signal death')
  t.equal(result.exitCode, 1, 'exit status 1')
  const lines = result.stdout.split('\n').filter(l => l !== '')
  t.equal(lines.length, 1, 'one line on stdout', { stdout: result.stdout })
  t.match(JSON.parse(lines[0] ?? '{}'), { cniVersion: '1.0.0', code, msg, details: String }, `the spec's error object, code ${code}`)
}

t.test('2 MiB of stdin is refused with code 7 before the agent is asked, never cut at 1 MiB and sent', async t => {
  const a = await agent(t, { readBytes: 1, reply: Buffer.from('0 2\n{}') })
  const result = await run(configOf(a.socket, 2 * LIMIT))
  expectError(t, result, 7, /the network config on stdin is larger than the node agent accepts/)
  t.equal(a.seen.connections, 0, 'the agent was not asked')
})

t.test('stdin and the CNI variables together over the limit: code 4, the agent not asked', async t => {
  const a = await agent(t, { readBytes: 1, reply: Buffer.from('0 2\n{}') })
  const result = await run(configOf(a.socket, LIMIT - 100), { CNI_ARGS: 'K8S_POD_NAME=x;'.repeat(20) })
  expectError(t, result, 4, /the CNI variables and the network config together are larger/)
  t.equal(a.seen.connections, 0)
})

t.test('a request just within the limit is sent whole and the reply passed on', async t => {
  const stdout = '{"cniVersion":"1.0.0"}\n'
  const a = await agent(t, { readBytes: LIMIT, reply: Buffer.from(`0 ${stdout.length}\n${stdout}a log line\n`) })
  const config = configOf(a.socket, LIMIT - 200)
  const result = await run(config)
  t.equal(result.exitCode, 0)
  t.equal(result.stdout, stdout, "the agent's stdout, byte for byte")
  t.equal(result.stderr, 'a log line\n', 'its stderr on stderr')
  t.ok(a.seen.bytes > config.length, `the agent read the variables and all ${config.length} bytes of config`)
})

t.test('the agent drops the connection: an error object with code 11 on stdout, exit 1, never SIGPIPE', async t => {
  for (const [what, readBytes, size] of [
    ['at once, before reading a large request', 0, LIMIT - 200],
    ['midway through a large request', 64 * 1024, LIMIT - 200],
    ['after a small request, without answering', 1, 200],
  ] as const) {
    await t.test(what, async t => {
      const a = await agent(t, { readBytes })
      const result = await run(configOf(a.socket, size))
      expectError(t, result, 11, /could not send the request to the node agent|reply was cut short, too long or not understood/)
      t.equal(a.seen.connections, 1, 'the agent was asked')
    })
  }
})

t.test('a reply that is not the wire format is an error object, not passed on', async t => {
  const a = await agent(t, { readBytes: 1, reply: Buffer.from('garbage') })
  expectError(t, await run(configOf(a.socket, 300)), 11, /reply was cut short, too long or not understood/)
})

t.test('details naming a path are escaped into valid JSON', async t => {
  // No agent: the connect fails and the details name the socket path, which holds a control character here.
  const result = await run('{"cniVersion":"1.0.0","name":"n","agentSocket":"/nonexistent/agent\u0001.sock"}')
  expectError(t, result, 11, /node agent is not reachable/)
  t.match(JSON.parse(result.stdout), { details: '/nonexistent/agent\u0001.sock' })
})
