// The node agent's engine on its own (root, a throwaway netns): the Io it hands a rule command sends every effect
// into the pod's netns (tools started there, /proc read there, the rule lock taken there) while the agent itself
// stays in its own; the live probe alone gets a process of its own, and clean never does.
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import { createEngine, type RunCommand } from '../../../src/cni/node-io.js'
import { runRuleCommand } from '../../../src/commands/rules.js'
import { realExec } from '../../../src/exec/exec.js'
import type { Io } from '../../../src/io.js'
import { kernelAvailable } from '../../helpers/kernel.js'

const withNetns = async (t: Test): Promise<string> => {
  const name = `sr-${process.pid}-engine${Math.floor(Math.random() * 1e6)}`
  await realExec('ip', ['netns', 'add', name])
  t.teardown(() => realExec('ip', ['netns', 'delete', name]))
  return `/run/netns/${name}`
}

const stateDir = (t: Test): string => {
  const dir = mkdtempSync(`${tmpdir()}/sr-engine-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test("the Io of an in-process command works in the pod's netns, and the agent stays in its own", async t => {
  if (!kernelAvailable(t)) return
  const netns = await withNetns(t)
  const seen: Record<string, unknown> = {}
  const run: RunCommand = async (command, env, _flags, io: Io) => {
    seen['command'] = command
    seen['env'] = env
    seen['tool'] = (await io.exec('readlink', ['/proc/self/ns/net'])).stdout.trim()
    seen['agent'] = readlinkSync('/proc/thread-self/ns/net')
    seen['interfaces'] = await io.fs.readDir('/proc/sys/net/ipv6/conf')
    seen['devices'] = (await io.fs.readFile('/proc/net/dev'))?.split('\n').slice(2).filter(Boolean).length
    const release = await io.lock()
    // The lock is an abstract socket of the pod's netns: taken there, not in the agent's.
    seen['lockHere'] = await new Promise(resolve => {
      const probe = net.connect('\0sidecar-redirect/rules')
      probe.once('connect', () => {
        probe.destroy()
        resolve(true)
      })
      probe.once('error', () => resolve(false))
    })
    await release()
    io.out.write('report\n')
    return 0
  }
  const engine = createEngine({ run, cli: '/nonexistent/cli.mjs', stateDir: stateDir(t), timeoutMs: 5000, childTimeoutMs: 5000 })
  const outcome = await engine.runCli(netns, 'clean', {})
  t.same(
    outcome,
    { exitCode: 0, output: 'report\n' },
    "clean runs in process (the default ISTIO_VERIFY is live, and clean still never probes), its output the command's",
  )
  t.equal(seen['command'], 'clean')
  t.equal(seen['tool'], `net:[${statSync(netns).ino}]`, "a tool starts in the pod's netns")
  t.equal(seen['agent'], readlinkSync('/proc/self/ns/net'), 'the agent is back in its own before the command goes on')
  t.same(seen['interfaces'], ['all', 'default', 'lo'], "/proc/sys/net is the pod's (it has only lo)")
  t.equal(seen['devices'], 1, "/proc/net is the pod's")
  t.equal(seen['lockHere'], false, "the rule lock was not taken in the agent's netns")
})

t.test('a command with the live probe runs as the CLI in the pod, a process of its own; the others in process', async t => {
  if (!kernelAvailable(t)) return
  const netns = await withNetns(t)
  const ran: string[] = []
  const run: RunCommand = async command => {
    ran.push(command)
    return 0
  }
  const engine = createEngine({ run, cli: '/nonexistent/cli.mjs', stateDir: stateDir(t), timeoutMs: 5000, childTimeoutMs: 5000 })
  const live = await engine.runCli(netns, 'verify', { ISTIO_VERIFY: 'live' })
  t.not(live.exitCode, 0, 'the child could not start the CLI given')
  t.match(live.output, /\/nonexistent\/cli\.mjs/, 'it was asked to run it')
  t.equal((await engine.runCli(netns, 'init', { ISTIO_VERIFY: 'rules' })).exitCode, 0)
  t.equal((await engine.runCli(netns, 'clean', { ISTIO_VERIFY: 'live' })).exitCode, 0)
  t.same(ran, ['init', 'clean'], 'init without the live probe and clean ran in process')
})

t.test('inspectNetns: a netns, nothing, a file, a directory, and the agent’s own', async t => {
  if (!kernelAvailable(t)) return
  const netns = await withNetns(t)
  const dir = stateDir(t)
  writeFileSync(`${dir}/file`, 'x')
  mkdirSync(`${dir}/dir`)
  const engine = createEngine({ run: async () => 0, cli: '', stateDir: dir, timeoutMs: 5000, childTimeoutMs: 5000 })
  t.match(await engine.inspectNetns(netns), { kind: 'netns', id: `${statSync(netns).dev}:${statSync(netns).ino}` })
  t.same(await engine.inspectNetns(`${dir}/nothing`), { kind: 'gone' })
  t.same(await engine.inspectNetns(`${dir}/file`), { kind: 'not-netns', what: 'a regular file' })
  t.same(await engine.inspectNetns(`${dir}/dir`), { kind: 'not-netns', what: 'a directory' })
  t.same(await engine.inspectNetns('/proc/self/ns/user'), { kind: 'not-netns', what: 'a namespace of another kind' })
  t.same(await engine.inspectNetns('/proc/self/ns/net'), { kind: 'own', whose: "the node agent's own" })
})

t.test('requests side by side in one process keep their own settings, rules, output and exit code', async t => {
  if (!kernelAvailable(t)) return
  const [a, b, c] = await Promise.all([withNetns(t), withNetns(t), withNetns(t)])
  const engine = createEngine({ run: runRuleCommand, cli: '/nonexistent/cli.mjs', stateDir: stateDir(t), timeoutMs: 10_000, childTimeoutMs: 10_000 })
  const env = (port: string) => ({ ISTIO_PROXY_PORT: port, ISTIO_VERIFY: 'rules' })
  const [ra, rb, rc] = await Promise.all([
    engine.runCli(a, 'init', env('15001')),
    engine.runCli(b, 'init', { ...env('15006'), ISTIO_LOG_FORMAT: 'json' }),
    engine.runCli(c, 'init', env('0')),
  ])
  t.equal(ra.exitCode, 0, 'the first pod is captured', { output: ra.output })
  t.equal(rb.exitCode, 0, 'so is the second', { output: rb.output })
  t.equal(rc.exitCode, 2, "the third's refused setting is its own failure (E_CONFIG)")
  t.match(rc.output, /ISTIO_PROXY_PORT="0".*\[E_CONFIG\]/, 'named in its own output')
  t.notMatch(ra.output + rb.output, /E_CONFIG/, "and in no one else's")
  t.notMatch(ra.output, /^\{/m, 'the first reports as text')
  t.match(rb.output, /^\{"event":/m, 'the second as the JSON it asked for')
  const rules = async (netns: string) => (await realExec('nsenter', [`--net=${netns}`, 'iptables-nft-save', '-t', 'nat'])).stdout
  const [sa, sb, sc] = await Promise.all([rules(a), rules(b), rules(c)])
  t.match(sa, /--to-ports 15001/, "the first pod's rules redirect to its proxy port")
  t.notMatch(sa, /15006/)
  t.match(sb, /--to-ports 15006/, "the second's to its own")
  t.notMatch(sb, /15001/)
  t.notMatch(sc, /SIDECAR_/, 'the refused pod has nothing of ours')
})
