// Every bypass method, end to end: init (with its live probe), then a relaying proxy started through
// `entrypoint run`, which must carry app traffic both ways without looping, run as UID 1337 with exactly the
// privileges its method needs, and stay classified across a crash and restart.
import t, { type Test } from 'tap'
import type { Started } from '../../../src/exec/processes.js'
import { classidOf } from '../../../src/cgroup/net-cls.js'
import type { Sandbox } from '../../../src/sandbox/sandbox.js'
import { CAP_NET_ADMIN, readStatus } from '../../../src/privilege/status.js'
import { initOk, kernelAvailable, POD, POD6, programs, REMOTE, REMOTE6, START_MS, withSandbox } from '../../helpers/kernel.js'
import { untappedCall } from '../../helpers/processes.js'
import { uniqueClassid, withNetCls } from '../../helpers/netcls.js'
import { BACKENDS } from '../../helpers/rows.js'

const CLASSID = uniqueClassid()
const NET_ADMIN = 1n << BigInt(CAP_NET_ADMIN)

interface MethodCase {
  readonly env: Record<string, string>
  readonly caps: bigint
}

const METHODS: Record<string, MethodCase> = {
  uid: { env: { ISTIO_OUTBOUND_METHOD: 'uid' }, caps: 0n },
  mark: { env: { ISTIO_OUTBOUND_METHOD: 'mark', ISTIO_SO_MARK: '0x10/0xf0' }, caps: NET_ADMIN },
  cgroup: { env: { ISTIO_OUTBOUND_METHOD: 'cgroup', ISTIO_NET_CLS_ID: `0x${CLASSID.toString(16)}` }, caps: 0n },
}

/** The mark the proxy sets, taken from what `envoy-config` tells an Envoy user to configure. */
const markFromEnvoyConfig = async (box: Sandbox, env: Record<string, string>): Promise<string[]> => {
  const result = await box.runInit({ ...env, ISTIO_LOG_FORMAT: 'json' }, ['envoy-config'])
  const config = JSON.parse(result.output) as { upstream_bind_config: { socket_options: { int_value: number }[] } }
  return ['--mark', String(config.upstream_bind_config.socket_options[0]!.int_value)]
}

const startAgent = (box: Sandbox, env: Record<string, string>, proxyArgs: string[], agentArgs: string[] = []): Started => {
  const { cli, peer } = programs()
  return box.start(
    'pod',
    process.execPath,
    [cli, 'run', '--restart', 'on-failure', ...agentArgs, '--', process.execPath, peer, 'proxy', '5001', ...proxyArgs],
    env,
  )
}

const isReady = (line: string): boolean => line.includes('"ready"')

/** The pid the proxy reported in its `skip`-th ready line (0 for the first start, 1 after a restart). */
const readyPid = async (agent: Started, skip = 0): Promise<number> => {
  await agent.waitForLine(() => agent.lines.filter(isReady).length > skip, START_MS)
  return (JSON.parse(agent.lines.filter(isReady)[skip]!) as { pid: number }).pid
}

const expectPrivileges = (t: Test, pid: number, what: string, caps: bigint): void => {
  const status = readStatus(pid)
  t.same(
    { uids: status.uids, gids: status.gids, groups: status.groups, noNewPrivs: status.noNewPrivs },
    { uids: [1337, 1337, 1337, 1337], gids: [1337, 1337, 1337, 1337], groups: [1337], noNewPrivs: true },
    `${what}: UID, GID and groups are 1337, no_new_privs is set`,
  )
  t.same(
    [status.capEff, status.capPrm, status.capAmb, status.capBnd],
    [caps, caps, caps, caps],
    `${what}: effective, permitted, ambient and bounding capabilities are exactly 0x${caps.toString(16)}`,
  )
}

/** A connection relayed by the proxy: it answers as the real destination, and the proxy logged the relay. */
const expectRelayed = async (
  t: Test,
  box: Sandbox,
  agent: Started,
  from: 'pod' | 'remote',
  host: string,
  port: number,
  label: string,
): Promise<void> => {
  const before = agent.lines.length
  const result = await box.connect(from, host, port)
  t.equal(result.reply?.label, label, `${from} -> ${host}:${port} answered by ${label}`, { result })
  const relayed = agent.lines.slice(before).some(l => l.includes('"relayed"') && l.includes(`"to":"${host}:${port}"`))
  t.ok(relayed, `  ... through the proxy, which relayed it to ${host}:${port}`)
}

for (const backend of BACKENDS) {
  for (const [method, spec] of Object.entries(METHODS)) {
    t.test(
      `${backend}, ${method}: a proxy started through run relays both ways without a loop, with exactly its privileges, across a restart`,
      async t => {
        if (!kernelAvailable(t)) return
        const box = await withSandbox(t)
        const root = method === 'cgroup' ? await withNetCls(t, box, CLASSID) : undefined
        const env = { ISTIO_BACKEND: backend, ...spec.env, ...(root !== undefined && { ISTIO_NET_CLS_ROOT: root }) }
        const report = await initOk(t, box, { ...env, ISTIO_VERIFY: 'live' })
        for (const family of ['ipv4', 'ipv6']) {
          for (const check of ['capture', 'bypass', 'loopback'])
            t.match(report, `${family} ${check}: passed`, `init's live probe: ${family} ${check}`)
        }
        await box.serve('pod', ['app=[::]:8080'])
        await box.serve('remote', ['remote=[::]:9090'])
        const agent = startAgent(box, env, method === 'mark' ? await markFromEnvoyConfig(box, env) : [])
        for (const restart of [0, 1]) {
          const pid = await readyPid(agent, restart)
          expectPrivileges(t, pid, `proxy (start ${restart + 1})`, spec.caps)
          expectPrivileges(t, agent.pid, 'the agent itself', spec.caps)
          if (root !== undefined) t.equal(await classidOf(pid, root), CLASSID, 'the proxy is in the net_cls group')
          await expectRelayed(t, box, agent, 'pod', REMOTE, 9090, 'remote')
          await expectRelayed(t, box, agent, 'pod', REMOTE6, 9090, 'remote')
          await expectRelayed(t, box, agent, 'remote', POD, 8080, 'app')
          await expectRelayed(t, box, agent, 'remote', POD6, 8080, 'app')
          if (restart === 0) process.kill(pid, 'SIGKILL')
        }
        t.ok(
          agent.lines.some(l => l.includes('restarting the proxy in 100 ms')),
          'the agent logged the restart',
        )
        process.kill(agent.pid, 'SIGTERM')
        t.equal(await agent.exited, 143, 'SIGTERM is passed on, and the agent exits as the proxy did (128+15)')
      },
    )
  }
}

t.test('without the identity its method exempts, the proxy loops or is refused', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await initOk(t, box, { ISTIO_OUTBOUND_METHOD: 'mark' })
  await box.serve('remote', ['remote=[::]:9090'])
  const unmarked = startAgent(box, { ISTIO_OUTBOUND_METHOD: 'mark' }, [])
  await readyPid(unmarked)
  const looped = await box.connect('pod', REMOTE, 9090)
  t.not(looped.reply?.label, 'remote', 'a proxy that does not mark its upstream is captured again: the connection never reaches the remote')
  t.ok(unmarked.lines.filter(l => l.includes('"relayed"')).length > 1, 'the proxy saw its own connection come back')
  process.kill(unmarked.pid, 'SIGTERM')
  await unmarked.exited

  const refusals: [string, Record<string, string>, string[], number, RegExp][] = [
    ['uid method, proxy user 1000', { ISTIO_OUTBOUND_METHOD: 'uid' }, ['--user', '1000'], 6, /running as UID 1000, but the rules exempt UID 1337/],
    ['the proxy user is root by name', {}, ['--user', 'root'], 6, /refusing to run the proxy as root/],
    ['the proxy user is UID 0', {}, ['--user', '0'], 2, /--user="0" is not valid/],
  ]
  for (const [what, env, args, code, message] of refusals) {
    const agent = startAgent(box, env, [], args)
    t.equal(await agent.exited, code, `${what}: exit ${code}`)
    t.match(agent.lines.join('\n'), message)
  }
  const { cli, peer } = programs()
  const unprivileged: [string, Record<string, string>, RegExp][] = [
    ['mark, started without CAP_NET_ADMIN', { ISTIO_OUTBOUND_METHOD: 'mark' }, /needs CAP_NET_ADMIN/],
    ['cgroup, started outside the group and without root', { ISTIO_OUTBOUND_METHOD: 'cgroup' }, /in no net_cls group with classid 0x100001/],
    [
      'TPROXY, started without CAP_NET_ADMIN',
      { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' },
      /TPROXY: the proxy needs CAP_NET_ADMIN for IP_TRANSPARENT/,
    ],
  ]
  for (const [what, env, message] of unprivileged) {
    const agent = box.start(
      'pod',
      'setpriv',
      ['--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, cli, 'run', '--', process.execPath, peer, 'proxy', '5001'],
      env,
    )
    t.equal(await agent.exited, 6, `${what}: exit 6`)
    t.match(agent.lines.join('\n'), message)
  }
})

t.test('the live probe fails when a rule is missing or traffic skips our chain', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await initOk(t, box, { ISTIO_VERIFY: 'live' })
  await box.exec('pod', 'iptables', ['-t', 'nat', '-D', 'SIDECAR_OUTBOUND', '2'])
  const missing = await box.runInit({}, ['verify'])
  t.equal(missing.exitCode, 5)
  t.match(missing.output, /ipv4 bypass: failed, proxy uid 1337 -> .* reached the proxy port/, 'the proxy UID is captured now')
  t.match(missing.output, /ipv6 bypass: passed/, 'the other family is still right')

  await initOk(t, box, { ISTIO_VERIFY: 'live' })
  // Our rules stay exactly as planned, but a foreign rule in front of them lets traffic skip them: the whole-path
  // check names it, and the live probe shows what it does to packets.
  await box.exec('pod', 'ip6tables', ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-j', 'RETURN'])
  const skipped = await box.runInit({}, ['verify'])
  t.equal(skipped.exitCode, 5, 'verify fails although our own rules are exact')
  t.match(skipped.output, /iptables-nft ipv6 nat OUTPUT rule 1: -A OUTPUT -p tcp -j RETURN/)
  t.match(skipped.output, /live probe:\n[\s\S]*ipv6 capture: failed, uid 0 \(an app identity\) -> .* reached its destination/)
})

t.test("init's live probe works from an install only root can read, as a private checkout is", async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const { cpSync, chmodSync, mkdtempSync, rmSync } = await import('node:fs')
  const { dirname } = await import('node:path')
  const root = dirname(dirname(programs().cli))
  const dir = mkdtempSync(`${(await import('node:os')).tmpdir()}/sr-private-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const part of ['dist', 'node_modules/koffi', 'node_modules/@koromix']) cpSync(`${root}/${part}`, `${dir}/${part}`, { recursive: true })
  chmodSync(dir, 0o700)
  const result = await box.tryExec('pod', process.execPath, [`${dir}/dist/cli.mjs`, 'init'], { ISTIO_VERIFY: 'live' })
  t.equal(result.exitCode, 0, { output: result.output })
  t.match(result.output, /ipv4 bypass: passed, proxy uid 1337/)
})

t.test('the demo works from an install only root can read, as a clone in /root is', async t => {
  if (!kernelAvailable(t)) return
  const { cpSync, chmodSync, mkdtempSync, rmSync } = await import('node:fs')
  const { dirname } = await import('node:path')
  const root = dirname(dirname(programs().cli))
  const dir = mkdtempSync(`${(await import('node:os')).tmpdir()}/sr-private-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const part of ['dist', 'node_modules/koffi', 'node_modules/@koromix', 'node_modules/posix'])
    cpSync(`${root}/${part}`, `${dir}/${part}`, { recursive: true })
  chmodSync(dir, 0o700)
  const { runForStatus } = await import('../../../src/exec/processes.js')
  const result = await runForStatus(...untappedCall(process.execPath, `${dir}/dist/cli.mjs`, 'demo'))
  t.equal(result.exitCode, 0, { output: result.output })
  t.match(result.output, /every connection went where the design says/)
})
