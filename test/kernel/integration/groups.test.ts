// The proxy's supplementary groups are exactly the configured ones, even when the group database lists its user in
// root, disk and shadow. The database is replaced only inside a private mount namespace of the test's own.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import type { Started } from '../../../src/exec/processes.js'
import { readStatus } from '../../../src/privilege/status.js'
import { kernelAvailable, programs, START_MS, withSandbox } from '../../helpers/kernel.js'

const PRIVILEGED_GROUPS = 'root:x:0:istio-proxy\ndisk:x:6:istio-proxy\nshadow:x:42:istio-proxy\nistio-proxy:x:1337:\nextra:x:2000:\n'
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nistio-proxy:x:1337:1337::/nonexistent:/bin/false\n'

// The proxy: says whether it can read /etc/shadow (group shadow could), then its PID, then waits.
const PROXY = 'if cat /etc/shadow >/dev/null 2>&1; then echo shadow-readable; fi; echo "proxy-pid $$"; exec sleep 600'

const startAgent = (t: Test, box: Awaited<ReturnType<typeof withSandbox>>, env: Record<string, string>): Started => {
  const dir = mkdtempSync(`${tmpdir()}/sr-groups-`)
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(`${dir}/group`, PRIVILEGED_GROUPS, { mode: 0o644 })
  writeFileSync(`${dir}/passwd`, PASSWD, { mode: 0o644 })
  const { cli } = programs()
  const script = `mount --bind ${dir}/group /etc/group && mount --bind ${dir}/passwd /etc/passwd && exec "$@"`
  const agent = box.start(
    'pod',
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, cli, 'run', '--', 'sh', '-c', PROXY],
    {
      ISTIO_PROXY_USER: 'istio-proxy',
      ...env,
    },
  )
  t.teardown(() => agent.stop())
  return agent
}

const proxyPid = async (agent: Started): Promise<number> => Number((await agent.waitForLine(l => l.startsWith('proxy-pid '), START_MS)).split(' ')[1])

t.test('with istio-proxy listed in root, disk and shadow, the proxy gets exactly its configured groups', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  for (const [groups, expected] of [
    ['', [1337]],
    ['2000', [1337, 2000]],
  ] as const) {
    const agent = startAgent(t, box, { ISTIO_PROXY_GROUPS: groups, ISTIO_LOG_FORMAT: 'json' })
    const pid = await proxyPid(agent)
    const status = readStatus(pid)
    t.same(
      [status.uids[0], status.gids[0], status.groups],
      [1337, 1337, expected],
      `ISTIO_PROXY_GROUPS=${JSON.stringify(groups)}: Groups ${expected.join(' ')}, never 0`,
    )
    t.notOk(agent.lines.includes('shadow-readable'), '... so /etc/shadow stays unreadable')
    t.match(readFileSync('/etc/group', 'utf8'), /^root:/m, "the machine's own group file is untouched")
    const identity = agent.lines.map(l => (l.startsWith('{') ? (JSON.parse(l) as Record<string, unknown>) : {})).find(e => e['event'] === 'identity')
    t.match(
      identity,
      {
        groups: expected,
        uids: [1337, 1337, 1337, 1337],
        caps: { effective: '0x0', permitted: '0x0', ambient: '0x0', bounding: '0x0' },
        noNewPrivs: true,
      },
      '... and the drop log read them back from the kernel',
    )
    t.match(String(identity?.['message']), `groups ${expected.join(',')}; capabilities effective none`)
  }
})

t.test('GID 0 in ISTIO_PROXY_GROUPS is refused with exit 2 before anything starts', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const agent = startAgent(t, box, { ISTIO_PROXY_GROUPS: '2000,0' })
  t.equal(await agent.exited, 2)
  t.match(agent.lines.join('\n'), /ISTIO_PROXY_GROUPS="2000,0" is not valid: expected comma-separated GIDs .*GID 0/)
  t.notOk(
    agent.lines.some(l => l.startsWith('proxy-pid')),
    'no proxy was started',
  )
})
