// A node starting 100 pods at once (issue 30), not timed: every ADD through the real plugin succeeds with the node
// agent held to the chart's 192 MiB by its own memory cgroup, and the agent never runs more tool processes at once
// than its slots allow (each request runs at most so many side by side: see ROUND), nor works on more pods at once
// than it has slots. Every tool the agent starts goes through a wrapper on its PATH that logs its start
// and end with the netns it runs in, so the count is the kernel's truth, not the agent's own.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { execa } from 'execa'
import t from 'tap'
import { createCgroup, inCgroup } from '../../../bench/cgroup.mjs'
import { realExec } from '../../../src/exec/exec.js'
import { findOnPath } from '../../../src/exec/on-path.js'
import { startProcess } from '../../../src/exec/processes.js'
import { kernelAvailable, programs } from '../../helpers/kernel.js'

const PODS = 100
const SLOTS = 4
// The most tools one request runs side by side (of those wrapped): init's first round (both families'
// iptables-save, `nft list ruleset`, and `ip -j link` for the devices' hooks; `tc` is not wrapped), clean's (both
// families' iptables-save, `ipset save`, and where /proc shows a route of ours may be, each family's `ip rule`
// and `ip route`).
const ROUND = { ADD: 4, DEL: 7 } as const
const LIMIT = 192 * 1024 * 1024
const TOOLS = ['iptables', 'ip6tables'].flatMap(t => ['', '-nft', '-legacy'].flatMap(v => ['save', 'restore'].map(verb => `${t}${v}-${verb}`)))
const PLUGIN = new URL('../../../dist/cni/sidecar-redirect', import.meta.url).pathname

/**
 * Wrappers named as the tools, each logging "start|end PID NETNS" around the real one. Each tool takes 50 ms more:
 * requests then pile up as on a loaded node, so an agent without a limit would be seen running many at once.
 */
const wrapTools = (dir: string, log: string): void => {
  for (const tool of [...TOOLS, 'nft', 'ipset', 'ip']) {
    const real = findOnPath(tool)
    if (real === undefined) continue
    writeFileSync(
      `${dir}/${tool}`,
      `#!/bin/sh\nns=$(readlink /proc/self/ns/net)\necho "start $$ $ns" >> ${log}\nsleep 0.05\n${real} "$@"\nrc=$?\necho "end $$ $ns" >> ${log}\nexit $rc\n`,
    )
    chmodSync(`${dir}/${tool}`, 0o755)
  }
}

/** The most tool processes, and the most distinct netns, that were running at once. */
const overlap = (log: string): { processes: number; netns: number; total: number } => {
  const running = new Map<string, string>()
  let processes = 0
  let netns = 0
  let total = 0
  for (const line of readFileSync(log, 'utf8').trim().split('\n')) {
    const [event, pid = '', ns = ''] = line.split(' ')
    if (event === 'start') {
      running.set(pid, ns)
      total++
    } else running.delete(pid)
    processes = Math.max(processes, running.size)
    netns = Math.max(netns, new Set(running.values()).size)
  }
  return { processes, netns, total }
}

const plugin = (command: string, socket: string, netns: string, i: number) =>
  execa(PLUGIN, [], {
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: `c${i}`,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=p${i};K8S_POD_UID=${i}`,
      CNI_PATH: '/nonexistent',
    },
    extendEnv: false,
    input: JSON.stringify({
      cniVersion: '1.0.0',
      name: 'n',
      type: 'sidecar-redirect',
      agentSocket: socket,
      captureAll: true,
      settings: { ISTIO_PROXY_PORT: '15001' },
    }),
    reject: false,
  })

t.test(
  `${PODS} concurrent ADDs and DELs all succeed with the agent under 192 MiB, never more than ${SLOTS} pods (or their tools) at once`,
  async t => {
    if (!kernelAvailable(t)) return
    const dir = mkdtempSync(`${tmpdir()}/sr-scale-`)
    chmodSync(dir, 0o755)
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const wrappers = `${dir}/bin`
    mkdirSync(wrappers)
    const log = `${dir}/tools.log`
    wrapTools(wrappers, log)
    const group = createCgroup(`sr-${process.pid}-scale`)
    t.teardown(() => group.remove())
    group.limit(LIMIT)
    const names = Array.from({ length: PODS }, (_, i) => `sr-${process.pid}-scale${i}`)
    t.teardown(async () => {
      for (const name of names) await realExec('ip', ['netns', 'delete', name]).catch(() => undefined)
    })
    for (const name of names) {
      await realExec('ip', ['netns', 'add', name])
      await realExec('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
    }
    const socket = `${dir}/run/agent.sock`
    const [file = '', ...args] = inCgroup(group, [process.execPath, programs().cli, 'node-agent'])
    const agent = startProcess(file, args, {
      PATH: `${wrappers}:${process.env['PATH']}`,
      ISTIO_NODE_AGENT_SOCKET: socket,
      ISTIO_NODE_AGENT_CONCURRENCY: String(SLOTS),
      ISTIO_NODE_AGENT_RECHECK_SECONDS: '0',
    })
    t.teardown(() => agent.stop())
    await agent.waitForLine(l => l.includes('listening'), 60_000)

    for (const command of ['ADD', 'DEL'] as const) {
      writeFileSync(log, '')
      const results = await Promise.all(names.map((name, i) => plugin(command, socket, `/run/netns/${name}`, i)))
      const failed = results.filter(r => r.exitCode !== 0)
      t.equal(failed.length, 0, `every ${command} succeeds`, { failed: failed.slice(0, 3).map(r => r.stdout) })
      const seen = overlap(log)
      t.ok(seen.total >= PODS * 4, `${command}: the wrappers saw the tools (${seen.total} runs)`)
      t.ok(seen.netns <= SLOTS, `${command}: at most ${SLOTS} pods worked on at once (saw ${seen.netns})`)
      t.ok(seen.processes <= SLOTS * ROUND[command], `${command}: at most ${SLOTS * ROUND[command]} tool processes at once (saw ${seen.processes})`)
    }
    const rules = await realExec('nsenter', [`--net=/run/netns/${names[PODS - 1]}`, 'iptables-nft-save'])
    t.notMatch(rules.stdout, /SIDECAR_/, 'DEL removed ours')
    t.equal(group.ooms(), 0, 'the kernel killed nothing in the agent for memory')
    t.ok(group.peakBytes() < LIMIT, `the agent and its tools peaked at ${(group.peakBytes() / 2 ** 20).toFixed(0)} MiB`)
    t.equal(agent.lines.filter(l => l.includes('stopped')).length, 0, 'the agent is still serving')
  },
)
