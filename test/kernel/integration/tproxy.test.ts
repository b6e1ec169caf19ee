// TPROXY inbound, decided by traffic through a real transparent proxy (Debian's haproxy, started through the agent
// as UID 1337 with CAP_NET_ADMIN only) on every backend and in both families: a client in the remote namespace
// connects to the pod; the proxy's accepted socket has the original destination as its local address, and it
// connects on to the app from the client's address, which is the address the app sees. In REDIRECT mode the app
// sees the proxy. The proxy's own outbound connections are not diverted on their way back. Then a refused apply
// leaves no rule or route behind, and clean leaves every foreign rule, set, policy rule and route as it was.
import { existsSync } from 'node:fs'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import type { Started } from '../../../src/exec/processes.js'
import { CAP_NET_ADMIN, readStatus } from '../../../src/privilege/status.js'
import { haproxyConfig, type ProxyKind } from '../../helpers/haproxy.js'
import { initOk, kernelAvailable, POD, POD6, programs, REMOTE, REMOTE6, snapshot, START_MS, withSandbox } from '../../helpers/kernel.js'
import { refusingIpv6Path, refusingNftPath } from '../../helpers/paths.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectBypassed } from '../../helpers/traffic.js'

const INBOUND_PORT = 15006
const APP = { v4: `${POD}:8080`, v6: `[${POD6}]:8080` }
const FAMILIES = [
  { pod: POD, remote: REMOTE },
  { pod: POD6, remote: REMOTE6 },
] as const

const MODES: Record<'REDIRECT' | 'TPROXY', { proxy: ProxyKind; caps: bigint }> = {
  REDIRECT: { proxy: 'plain', caps: 0n },
  TPROXY: { proxy: 'transparent', caps: 1n << BigInt(CAP_NET_ADMIN) },
}

const envFor = (backend: string, mode: keyof typeof MODES): Record<string, string> => ({
  ISTIO_BACKEND: backend,
  ISTIO_INBOUND_INTERCEPTION_MODE: mode,
  ISTIO_INBOUND_CAPTURE_PORT: String(INBOUND_PORT),
})

/** haproxy through `entrypoint run`, as the proxy container runs it; resolves with the agent and the proxy's pid. */
const startProxy = async (box: Sandbox, env: Record<string, string>, kind: ProxyKind): Promise<{ agent: Started; pid: number }> => {
  const agent = box.start('pod', process.execPath, [programs().cli, 'run', '--', 'haproxy', '-db', '-f', haproxyConfig(kind, INBOUND_PORT, APP)], env)
  await agent.waitForLine(line => /proxy started, pid \d+/.test(line), START_MS)
  const pid = Number(/proxy started, pid (\d+)/.exec(agent.lines.join('\n'))![1])
  // haproxy listens once its frontends are bound; a connection before that would be refused.
  for (let tries = 0; tries < 100; tries++) {
    const listening = await box.exec('pod', 'ss', ['-Htln', `sport = :${INBOUND_PORT}`])
    if (listening.stdout.split('\n').filter(Boolean).length >= 2) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return { agent, pid }
}

const stopProxy = async ({ agent }: { agent: Started }): Promise<void> => {
  await agent.stop()
}

// The app: it says who connected (the peer address it sees), holds the connection a while so the proxy's sockets can
// be read with ss, then answers and closes. The client in the remote namespace prints the answer it got.
const APP_SCRIPT = `const net = require('node:net')
net.createServer(c => {
  console.log(JSON.stringify({ from: c.remoteAddress.replace(/^::ffff:/, '') }))
  setTimeout(() => c.end('answered\\n'), 1500)
}).listen({ host: '::', port: 8080 }, () => console.log('listening'))`
const CLIENT_SCRIPT = `const net = require('node:net')
const c = net.connect({ host: process.argv[1], port: 8080 })
c.on('data', d => process.stdout.write(String(d)))
c.on('error', e => console.log('error ' + e.message))`

/** host:port as ss prints an endpoint, IPv6 in brackets. */
const endpointHost = (endpoint: string): string => endpoint.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')

/**
 * One inbound connection from the remote client to the pod's app port. Returns the peer address the app saw, and
 * the local address of the proxy's socket whose peer is the client (the one it accepted), as the kernel lists it.
 */
const inbound = async (t: Test, box: Sandbox, app: Started, pod: string, remote: string) => {
  const seen = app.lines.length
  const client = box.start('remote', process.execPath, ['-e', CLIENT_SCRIPT, pod])
  await app.waitForLine(() => app.lines.slice(seen).some(l => l.startsWith('{')), 5000).catch(() => undefined)
  const from = app.lines
    .slice(seen)
    .filter(l => l.startsWith('{'))
    .map(l => (JSON.parse(l) as { from: string }).from)[0]
  const sockets = (await box.exec('pod', 'ss', ['-Htnp', 'state', 'established'])).stdout.split('\n')
  const accepted = sockets
    .filter(line => line.includes('"haproxy"'))
    .map(line => line.trim().split(/\s+/))
    .find(([, , , peer]) => peer !== undefined && endpointHost(peer) === remote)?.[2]
  const answer = await client.waitForLine(line => line === 'answered', 5000).catch(() => client.lines.join(' | '))
  t.equal(answer, 'answered', `remote -> ${pod}:8080: the client gets the app's answer through the proxy`)
  await client.stop()
  return { from, accepted: accepted === undefined ? undefined : { host: endpointHost(accepted), port: accepted.replace(/^.*:/, '') } }
}

for (const backend of BACKENDS) {
  t.test(backend, async t => {
    if (!kernelAvailable(t)) return
    if (!existsSync('/usr/sbin/haproxy')) return t.fail('haproxy is missing: scripts/setup.sh installs it')
    const box = await withSandbox(t)
    const app = box.start('pod', process.execPath, ['-e', APP_SCRIPT])
    await app.waitForLine(line => line === 'listening')
    await box.serve('remote', ['remote=[::]:9090'])
    // Foreign state the run must leave alone: rules in every nat and mangle table (so the tables exist before as
    // after: clean cannot un-create a table), and someone else's policy routing.
    for (const tool of ['iptables-nft', 'ip6tables-nft', 'iptables-legacy', 'ip6tables-legacy']) {
      for (const table of ['nat', 'mangle']) {
        for (const chain of ['PREROUTING', 'OUTPUT']) await box.exec('pod', tool, ['-t', table, '-A', chain, '-p', 'udp', '-j', 'RETURN'])
      }
    }
    for (const family of ['-4', '-6']) {
      await box.exec('pod', 'ip', [family, 'rule', 'add', 'priority', '31999', 'fwmark', '1338', 'lookup', '134'])
      await box.exec('pod', 'ip', [family, 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', '134'])
    }
    const before = await snapshot(box)

    for (const [mode, { proxy: kind, caps }] of Object.entries(MODES) as [keyof typeof MODES, (typeof MODES)[keyof typeof MODES]][]) {
      await t.test(`${mode}: inbound through haproxy`, async t => {
        const env = envFor(backend, mode)
        await initOk(t, box, env)
        const proxy = await startProxy(box, env, kind)
        t.teardown(() => stopProxy(proxy))
        const status = readStatus(proxy.pid)
        t.same(
          [status.uids[0], status.capEff, status.capAmb, status.capBnd],
          [1337, caps, caps, caps],
          `haproxy runs as 1337 with caps 0x${caps.toString(16)}`,
        )
        for (const { pod, remote } of FAMILIES) {
          const seen = await inbound(t, box, app, pod, remote)
          if (mode === 'TPROXY') {
            t.same(
              seen.accepted,
              { host: pod, port: '8080' },
              `the proxy's accepted socket has the original destination ${pod}:8080 as its local address`,
            )
            t.equal(seen.from, remote, `the app sees the client's real address ${remote}`)
          } else {
            t.same(seen.accepted, { host: pod, port: String(INBOUND_PORT) }, 'REDIRECT: the proxy accepted on its own port')
            t.equal(seen.from, pod, 'REDIRECT: the app sees the proxy, not the client')
          }
          // The proxy's own outbound connection: its replies come back through PREROUTING and must not be diverted.
          await expectBypassed(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1337 } }, 'remote')
        }
        await initOk(t, box, env, ['verify'])
        if (mode === 'TPROXY') {
          // Drift in the routing is drift: verify names it, and init puts it back.
          await box.exec('pod', 'ip', ['-6', 'rule', 'del', 'priority', '32000', 'fwmark', '1337', 'lookup', '133'])
          const drifted = await box.runInit(env, ['verify'])
          t.equal(drifted.exitCode, 5, 'verify exits 5 without our IPv6 policy rule', { output: drifted.output })
          t.match(drifted.output, /ipv6 routing:\s+- ip rule: 32000:\s+from all fwmark 0x539 lookup 133/)
          await initOk(t, box, env)
          await initOk(t, box, env, ['verify'])
        }
      })
    }

    // Clean in REDIRECT mode still removes TPROXY's routing: a pod switched back would otherwise keep it.
    await initOk(t, box, envFor(backend, 'REDIRECT'), ['clean'])
    t.equal(await snapshot(box), before, 'clean leaves exactly what was there before: rules, sets, policy rules and routes')
    const PATH = backend === 'nftables' ? refusingNftPath() : refusingIpv6Path()
    const refused = await box.runInit({ ISTIO_VERIFY: 'rules', ...envFor(backend, 'TPROXY'), PATH })
    t.equal(refused.exitCode, 4, 'a refused apply exits 4', { output: refused.output })
    t.equal(await snapshot(box), before, 'and leaves no rule, policy rule or route behind')
  })
}
