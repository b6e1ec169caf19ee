// The node agent as a long-lived process: it keeps the pods it captured captured (rechecks repair drift in place,
// with a log line and a metric, and survive a restart), forgets pods at DEL and when their netns goes, bounds every
// connection and queued request, and never works in its own netns or PID 1's.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { realExec } from '../../../src/exec/exec.js'
import { runForStatus, startProcess } from '../../../src/exec/processes.js'
import { jsonLine, POD_ARGS, startRig, type Rig } from '../../helpers/cni.js'
import { kernelAvailable, withSandbox } from '../../helpers/kernel.js'

const CAPTURED = { captureAll: true, settings: { ISTIO_PROXY_PORT: '15001' }, capabilities: { 'io.kubernetes.cri.pod-annotations': true } }
const OWNER_RULE = /-A SIDECAR_OUTBOUND -p tcp -m owner --uid-owner 1337 .*-j RETURN/

const ours = async (box: Sandbox): Promise<string> => (await box.exec('pod', 'iptables-nft-save', ['-t', 'nat'])).stdout

const metrics = async (rig: Rig): Promise<string> => {
  const port = /metrics on 127\.0\.0\.1:(\d+)\/metrics/.exec(rig.agent().lines.find(l => l.includes('listening')) ?? '')?.[1]
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  return response.text()
}

const add = async (t: Test, rig: Rig, box: Sandbox, list: string): Promise<void> => {
  const result = await rig.runtime(box, 'add', list)
  t.equal(result.exitCode, 0, 'ADD succeeds', { output: result.output })
}

const RECHECK = { ISTIO_NODE_AGENT_RECHECK_SECONDS: '1', ISTIO_NODE_AGENT_METRICS: '127.0.0.1:0/metrics' }

t.test('a rule of ours deleted from a captured pod is back within the recheck period, with one log line and a metric', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t, { env: RECHECK })
  const box = await withSandbox(t)
  const list = rig.conflist(CAPTURED)
  await add(t, rig, box, list)
  t.match(await metrics(rig), /^sidecar_redirect_node_agent_captured_pods 1$/m, 'the pod is kept')
  await box.exec('pod', 'iptables-nft', ['-t', 'nat', '-D', 'SIDECAR_OUTBOUND', '2'])
  t.notMatch(await ours(box), OWNER_RULE, 'the rule is gone')
  const agent = rig.agent()
  const line = await agent.waitForLine(l => l.includes('sidecar-redirect drift:'), 60_000)
  t.match(
    line,
    new RegExp(
      `/run/netns/${box.podNs} \\(container c-${box.podNs}\\): .*E_VERIFY.*- -A SIDECAR_OUTBOUND -p tcp -m owner --uid-owner 1337.*; repaired in place`,
    ),
  )
  t.match(await ours(box), OWNER_RULE, 'the rule is back')
  t.equal(agent.lines.filter(l => l.includes('sidecar-redirect drift:')).length, 1, 'one line for the finding')
  const text = await metrics(rig)
  t.match(text, /^sidecar_redirect_node_agent_drift_found_total 1$/m, 'drift counted')
  t.match(text, /^sidecar_redirect_node_agent_repairs_total\{result="repaired"\} 1$/m, 'repair counted')
  t.match(text, /^sidecar_redirect_node_agent_requests_total\{command="ADD",result="ok",code="0"\} 1$/m, 'the ADD counted')
  t.match(text, /^sidecar_redirect_node_agent_request_duration_seconds_count\{command="ADD"\} 1$/m, 'and timed')
  t.equal((await rig.runtime(box, 'check', list)).exitCode, 0, 'CHECK passes after the repair')
  t.equal((await rig.runtime(box, 'del', list)).exitCode, 0, 'DEL succeeds')
  t.match(await metrics(rig), /^sidecar_redirect_node_agent_captured_pods 0$/m, 'DEL forgets the pod')
})

t.test('after a restart the agent finds its captured pods again and repairs what changed meanwhile; a pod whose netns went is forgotten', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t, { env: RECHECK })
  const [kept, gone] = await Promise.all([withSandbox(t), withSandbox(t)])
  const list = rig.conflist(CAPTURED)
  await add(t, rig, kept, list)
  await add(t, rig, gone, list)
  await rig.stopAgent()
  t.equal(readdirSync(`${rig.dir}/run/state/pods`).length, 2, 'one record per captured pod')
  await kept.exec('pod', 'iptables-nft', ['-t', 'nat', '-D', 'SIDECAR_OUTBOUND', '2'])
  await realExec('ip', ['netns', 'delete', gone.podNs])
  await rig.startAgent()
  const agent = rig.agent()
  t.match(await agent.waitForLine(l => l.includes('sidecar-redirect resumed:'), 60_000), /keeping 1 captured pods/, 'one pod is kept')
  t.ok(
    agent.lines.some(l => l.includes(`sidecar-redirect forgotten: /run/netns/${gone.podNs}`) && l.includes('went while the agent was not running')),
    'the other is forgotten, saying why',
  )
  await agent.waitForLine(l => l.includes('sidecar-redirect drift:') && l.includes(kept.podNs) && l.includes('repaired in place'), 60_000)
  t.match(await ours(kept), OWNER_RULE, 'the rule deleted while the agent was down is back')
  t.equal(readdirSync(`${rig.dir}/run/state/pods`).length, 1, 'the forgotten pod has no record')
  await realExec('ip', ['netns', 'delete', kept.podNs])
  const forgotten = await agent.waitForLine(l => l.includes(`sidecar-redirect forgotten: /run/netns/${kept.podNs}`), 60_000)
  t.match(forgotten, /its network namespace is gone/, 'a netns deleted while running is noticed at the next recheck')
  t.same(readdirSync(`${rig.dir}/run/state/pods`), [], 'and its record removed')
})

/** A throwaway netns for the agent to run in, as its "node"; deleted at teardown. */
const nodeNetns = async (t: Test): Promise<string> => {
  const name = `sr-${process.pid}-node${Math.floor(Math.random() * 1e6)}`
  await realExec('ip', ['netns', 'add', name])
  t.teardown(() => realExec('ip', ['netns', 'delete', name]))
  return name
}

/** Every rule in the netns, by both iptables variants and nft, without dates and counters. */
const netfilterOf = async (netns: string): Promise<string> => {
  const tools = [['iptables-nft-save'], ['ip6tables-nft-save'], ['iptables-legacy-save'], ['ip6tables-legacy-save'], ['nft', 'list', 'ruleset']]
  const parts = await Promise.all(tools.map(async argv => (await realExec('nsenter', [`--net=/run/netns/${netns}`, ...argv])).stdout))
  return parts.map(p => p.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, '')).join('\n')
}

t.test(
  "the agent's own netns and PID 1's are refused for ADD and CHECK and left byte-identical; DEL of them, of a regular file or a directory succeeds",
  async t => {
    if (!kernelAvailable(t)) return
    const node = await nodeNetns(t)
    const rig = await startRig(t, { launch: argv => ['nsenter', `--net=/run/netns/${node}`, ...argv] })
    // The machine's own netns (PID 1's here) is not compared: other tests' podman networks change it meanwhile.
    const nodeBefore = await netfilterOf(node)
    const file = `${rig.dir}/not-a-netns`
    writeFileSync(file, 'planted\n')
    const dir = `${rig.dir}/a-directory`
    mkdirSync(dir)
    const config = { cniVersion: '1.1.0', name: 'n', type: 'sidecar-redirect', agentSocket: rig.socket, ...CAPTURED }
    const pod = (netns: string) => ({ CNI_CONTAINERID: 'c', CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_ARGS: POD_ARGS })
    const rows = [
      { netns: '/proc/self/ns/net', says: /is the node agent's own network namespace, not a pod's: refusing to change it/ },
      { netns: `/proc/${rig.agent().pid}/ns/net`, says: /is the node agent's own network namespace/ },
      // Where PID 1 is not this root's to look into (as in some sandboxes), the agent cannot even open it.
      {
        netns: '/proc/1/ns/net',
        says: /is PID 1's network namespace, not a pod's: refusing to change it|cannot be opened by the node agent \(EACCES\)/,
      },
      { netns: file, says: /is a regular file, not a network namespace/ },
      { netns: dir, says: /is a directory, not a network namespace/ },
      { netns: `${rig.dir}/nothing-here`, says: /names nothing: no such network namespace/ },
    ]
    for (const row of rows) {
      for (const command of ['ADD', 'CHECK']) {
        const result = await rig.plugin(command, config, { env: pod(row.netns) })
        t.match({ exitCode: result.exitCode, ...jsonLine(result.stdout) }, { exitCode: 1, code: 4, msg: row.says }, `${command} ${row.netns}: code 4`)
      }
      const del = await rig.plugin('DEL', config, { env: pod(row.netns) })
      t.equal(del.exitCode, 0, `DEL ${row.netns} succeeds`, { del })
    }
    t.equal(await netfilterOf(node), nodeBefore, "the agent's own netns is byte-identical")
  },
)

t.test('a connection that never delivers its request is closed at the deadline; the agent still answers others', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t, { env: { ISTIO_NODE_AGENT_DEADLINE_SECONDS: '1' } })
  const silent = net.connect(rig.socket)
  const closed = new Promise<boolean>(resolve => {
    silent.on('close', () => resolve(true))
    setTimeout(() => resolve(false), 10_000)
  })
  silent.on('error', () => undefined)
  silent.write('CNI_COMMAND=ADD\0')
  t.ok(await closed, 'the agent closed it')
  const config = { cniVersion: '1.1.0', name: 'n', type: 'sidecar-redirect', agentSocket: rig.socket }
  t.equal((await rig.plugin('STATUS', config)).exitCode, 0, 'and answers the next one')
})

t.test(
  "requests wait for a slot in order: one held up by its pod's rule lock keeps the only slot, the next is answered code 11 at its deadline",
  async t => {
    if (!kernelAvailable(t)) return
    const rig = await startRig(t, { env: { ISTIO_NODE_AGENT_CONCURRENCY: '1', ISTIO_NODE_AGENT_DEADLINE_SECONDS: '2' } })
    const [held, queued] = await Promise.all([withSandbox(t), withSandbox(t)])
    const list = rig.conflist(CAPTURED)
    // Another init's lock in the first pod's netns (an abstract socket: the netns is its scope), held for 4 s by root.
    const holder = startProcess('nsenter', [
      `--net=/run/netns/${held.podNs}`,
      process.execPath,
      '-e',
      "require('net').createServer().listen('\\0sidecar-redirect/rules', () => console.log('holding')); setTimeout(() => process.exit(0), 4000)",
    ])
    await holder.waitForLine(l => l === 'holding')
    const first = rig.runtime(held, 'add', list).then(r => ({ ...r, at: performance.now() }))
    await new Promise(resolve => setTimeout(resolve, 300))
    const second = await rig.runtime(queued, 'add', list)
    t.not(second.exitCode, 0, 'the queued ADD fails')
    t.match(
      second.output,
      /the node agent is busy: waited \d+(\.\d)? s for one of its 1 slots \(ISTIO_NODE_AGENT_CONCURRENCY\); try again later/,
      'code 11, saying why',
    )
    const released = await holder.exited.then(() => performance.now())
    const done = await first
    t.equal(done.exitCode, 0, 'the first ADD succeeds once the lock is free', { output: done.output })
    t.ok(done.at >= released, "it waited for the lock in the pod's netns, where the agent takes it")
    t.equal(
      (await runForStatus('nsenter', [`--net=/run/netns/${queued.podNs}`, 'iptables-nft-save'])).output.includes('SIDECAR_'),
      false,
      'the refused pod has nothing of ours',
    )
  },
)
