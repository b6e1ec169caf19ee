// `run` checks the bypass with the proxy's real identity before it starts the proxy: one connection as that
// identity must reach its destination. A rule that redirects it (the proxy would loop) stops the agent with exit 6
// before the proxy command ever runs; in a user-namespaced pod the identity checked is the pod's own UID 1337.
import t from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { initOk, kernelAvailable, POD_USERNS_MAP, programs, withSandbox } from '../../helpers/kernel.js'

/** Starts `run` in the pod with a proxy that says it started; resolves with how it ended and what it printed. */
const runAgent = async (box: Sandbox): Promise<{ exitCode: number | undefined; lines: readonly string[] }> => {
  const { cli, peer } = programs()
  const agent = box.start('pod', process.execPath, [cli, 'run', '--', process.execPath, peer, 'proxy', '5001'], { ISTIO_PROXY_PORT: '5001' })
  const ended = await Promise.race([agent.exited, agent.waitForLine(l => l.includes('"ready"'), 60_000).then(() => undefined)])
  await agent.stop()
  return { exitCode: ended, lines: agent.lines }
}

const ROWS = [
  { name: 'a pod', options: {} },
  { name: 'a user-namespaced pod (hostUsers: false), everything run as the pod does', options: { usernsMap: POD_USERNS_MAP } },
]

for (const row of ROWS) {
  t.test(`${row.name}: the proxy starts once its own connections are seen going out directly, in both families`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t, undefined, row.options)
    await initOk(t, box, { ISTIO_PROXY_PORT: '5001' })
    const { exitCode, lines } = await runAgent(box)
    t.equal(exitCode, undefined, 'the proxy started', { lines })
    const bypass = lines.find(l => l.includes('sidecar-redirect bypass:')) ?? ''
    t.match(bypass, /ipv4 proxy-bypass: passed, uid 1337 gid 1337 -> 198\.18\.0\.1:\d+ reached its destination/, 'IPv4 checked', { lines })
    t.match(bypass, /ipv6 proxy-bypass: passed, uid 1337 gid 1337 -> \[2001:db8::1\]:\d+ reached its destination/, 'IPv6 checked', { lines })
  })
}

t.test("a rule that redirects the proxy's own connections: run exits 6 and never starts the proxy", async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await initOk(t, box, { ISTIO_PROXY_PORT: '5001' })
  await box.exec('pod', 'iptables-nft', '-t nat -I OUTPUT 1 -p tcp -m owner --uid-owner 1337 -j REDIRECT --to-ports 5001'.split(' '))
  const { exitCode, lines } = await runAgent(box)
  t.equal(exitCode, 6, 'the agent exits 6 (E_PRIVILEGE)', { lines })
  t.ok(
    lines.some(l => /the proxy would capture its own traffic and loop, so it is not started \[E_PRIVILEGE\]/.test(l)),
    'saying why',
    { lines },
  )
  t.ok(
    lines.some(l => /ipv4 proxy-bypass: failed, uid 1337 gid 1337 -> .* reached the proxy port/.test(l)),
    'and where the connection went',
    { lines },
  )
  t.notOk(
    lines.some(l => l.includes('"ready"')),
    'the proxy never ran',
  )
})
