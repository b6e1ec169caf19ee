// Benchmark: CNI mode at node scale (issue 30). 1, 10, 50 and 100 concurrent ADDs, then as many DELs, through the
// real plugin (dist/cni/sidecar-redirect, as a runtime starts it) to the node agent, each pod a fresh netns; beside
// it, in the same run and alternating, the floor the issue describes (bench/floor-agent.mjs: one long-lived Node
// process that only starts init's tools, in init's rounds, through nsenter). Per burst: latency p50/p95/max as the
// runtime sees it (plugin start to exit) and the burst's span; the agent's peak memory and CPU per pod as its own
// cgroup counts them (the agent and every tool it starts). The agent runs as the image runs it (`entrypoint`), under
// the image's Node 24 and this machine's Node; the floor under the same Node. Run as root after a build:
// `npm run bench:cni` (ROUNDS=3 bursts of each size, SINGLE=15 one-pod ADDs per round; SIZES=1,10,50,100).
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname } from 'node:path'
import { createCgroup, inCgroup } from './cgroup.mjs'
import { node24 } from './node24.mjs'

const SIZES = (process.env.SIZES ?? '1,10,50,100').split(',').map(Number)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const SINGLE = Number(process.env.SINGLE ?? 15)
const root = new URL('..', import.meta.url).pathname
const PLUGIN = `${root}dist/cni/sidecar-redirect`
const id = randomBytes(3).toString('hex')
const dir = mkdtempSync(`${tmpdir()}/sr-bench-cni-`)
const env = { ...process.env }
delete env.NODE_OPTIONS
const nodes = { 'node 24': node24(), [`node ${process.versions.node.split('.')[0]}`]: process.execPath }
const MiB = 1024 * 1024

const payloadFile = `${dir}/payload`
writeFileSync(
  payloadFile,
  execFileSync(process.execPath, [`${root}dist/cli.mjs`, 'plan'], { encoding: 'utf8', env: { ...env, ISTIO_PROXY_PORT: '15001' } }),
)

// The agent's cgroup is charged for the page cache it is the first to fault in: Node's binary and the compile cache
// the entrypoint writes on its first run. Both are made warm first, as on a node that has run the image before.
for (const node of Object.values(nodes)) {
  execFileSync('cat', [node], { stdio: ['ignore', 'ignore', 'inherit'] })
  execFileSync(`${root}entrypoint`, ['plan'], { env: { ...env, PATH: `${dirname(node)}:${env.PATH}` }, stdio: 'ignore' })
}

let made = 0
/** Starts an agent (ours or the floor) in a cgroup of its own; resolves once it listens. */
const startAgent = async (kind, node) => {
  const socket = `${dir}/${kind}-${made}/agent.sock`
  const group = createCgroup(`sr-bench-${id}-${made++}`)
  const argv =
    kind === 'ours' ? [`${root}entrypoint`, 'node-agent'] : [node, '--max-semi-space-size=8', `${root}bench/floor-agent.mjs`, socket, payloadFile]
  if (kind === 'floor') execFileSync('mkdir', ['-p', dirname(socket)])
  const [file, ...args] = inCgroup(group, argv)
  const child = spawn(file, args, {
    // Rechecks are off: a burst measures the requests alone.
    env: { ...env, PATH: `${dirname(node)}:${env.PATH}`, ISTIO_NODE_AGENT_SOCKET: socket, ISTIO_NODE_AGENT_RECHECK_SECONDS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  await new Promise((resolve, reject) => {
    const look = chunk => {
      log += chunk
      if (log.includes('listening')) resolve()
    }
    child.stdout.on('data', look)
    child.stderr.on('data', look)
    child.once('exit', code => reject(new Error(`${kind} agent exited ${code}: ${log}`)))
  })
  const idle = group.peakBytes()
  return {
    socket,
    group,
    idle,
    stop: async () => {
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
      group.remove()
    },
  }
}

const plugin = (command, socket, netns, i) =>
  new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(PLUGIN, [], {
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: `c${i}`,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=p${i};K8S_POD_UID=${i}`,
        CNI_PATH: '/nonexistent',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out = []
    child.stdout.on('data', c => out.push(c))
    child.stderr.on('data', c => out.push(c))
    child.once('close', code => {
      const end = performance.now()
      if (code === 0) resolve({ start, end })
      else reject(new Error(`${command} ${netns} exited ${code}: ${Buffer.concat(out)}`))
    })
    const config = { cniVersion: '1.0.0', name: 'bench', type: 'sidecar-redirect', agentSocket: socket, captureAll: true }
    child.stdin.end(JSON.stringify({ ...config, settings: { ISTIO_PROXY_PORT: '15001' } }))
  })

const quantile = (values, q) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)]

/** N requests at once; latencies, span, the group's peak memory and CPU per pod. */
const burst = async (agent, command, namespaces) => {
  agent.group.resetPeak()
  const cpu = agent.group.cpuNs()
  const runs = await Promise.all(namespaces.map((ns, i) => plugin(command, agent.socket, `/run/netns/${ns}`, i)))
  const latencies = runs.map(r => r.end - r.start)
  return {
    p50: quantile(latencies, 0.5),
    p95: quantile(latencies, 0.95),
    max: Math.max(...latencies),
    span: Math.max(...runs.map(r => r.end)) - Math.min(...runs.map(r => r.start)),
    peakMiB: agent.group.peakBytes() / MiB,
    cpuMs: (agent.group.cpuNs() - cpu) / 1e6 / namespaces.length,
  }
}

let nsCount = 0
const freshNamespaces = n => {
  const names = Array.from({ length: n }, () => `sr-bench-${id}-${nsCount++}`)
  for (const name of names) {
    execFileSync('ip', ['netns', 'add', name])
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  }
  return names
}
const dropNamespaces = names => {
  for (const name of names) execFileSync('ip', ['netns', 'delete', name])
}

const median = values => quantile(values, 0.5)
const FIGURES = ['p50', 'p95', 'max', 'span', 'peakMiB', 'cpuMs']

const results = {}
const agents = []
try {
  for (const [label, node] of Object.entries(nodes)) {
    const ours = await startAgent('ours', node)
    const floor = await startAgent('floor', node)
    agents.push(ours, floor)
    const contenders = { ours, floor }
    const cells = {}
    const record = (kind, n, command, figures) => {
      const key = `${kind} ${n} ${command}`
      cells[key] ??= Object.fromEntries(FIGURES.map(f => [f, []]))
      for (const f of FIGURES) cells[key][f].push(figures[f])
    }
    for (let round = 0; round < ROUNDS + 1; round++) {
      const order = round % 2 === 0 ? ['ours', 'floor'] : ['floor', 'ours']
      for (const n of SIZES) {
        for (let rep = 0; rep < (n === 1 ? SINGLE : 1); rep++) {
          for (const kind of order) {
            const names = freshNamespaces(n)
            try {
              const added = await burst(contenders[kind], 'ADD', names)
              const deleted = await burst(contenders[kind], 'DEL', names)
              // Round 0 warms caches (and Node's compile cache) and is not counted.
              if (round > 0) {
                record(kind, n, 'ADD', added)
                record(kind, n, 'DEL', deleted)
              }
            } finally {
              dropNamespaces(names)
            }
          }
        }
      }
    }
    results[label] = { cells, idle: { ours: ours.idle / MiB, floor: floor.idle / MiB } }
    ours.group.resetPeak()
    results[label].kept = ours.group.peakBytes() / MiB
    await Promise.all([ours.stop(), floor.stop()])
    agents.length = 0
  }
} finally {
  for (const agent of agents) await agent.stop().catch(() => undefined)
  rmSync(dir, { recursive: true, force: true })
}

const machine = execFileSync('sh', ['-c', 'echo "$(nproc) cores, $(uname -r)"'], { encoding: 'utf8' }).trim()
console.log(
  `sidecar-redirect CNI benchmark, ${new Date().toISOString().slice(0, 10)}, ${machine}, agent slots ${2 * availableParallelism()} (default): medians of ${ROUNDS} bursts (one-pod: ${ROUNDS * SINGLE}), ms and MiB`,
)
for (const [label, { cells, idle, kept }] of Object.entries(results)) {
  const m = (key, f) => median(cells[key][f])
  console.log(
    `\n${label} (${execFileSync(nodes[label], ['--version'], { encoding: 'utf8' }).trim()}): agent idle ${idle.ours.toFixed(0)} MiB, floor idle ${idle.floor.toFixed(0)} MiB, agent after the bursts ${kept.toFixed(0)} MiB`,
  )
  console.log(
    '| contender | pods | ADD p50 | ADD p95 | ADD max | ADD span | ADD peak MiB | ADD CPU/pod | DEL p50 | DEL p95 | DEL max | DEL peak MiB | DEL CPU/pod |',
  )
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const n of SIZES) {
    for (const kind of ['ours', 'floor']) {
      const [a, d] = [`${kind} ${n} ADD`, `${kind} ${n} DEL`]
      const f = (key, fig) => m(key, fig).toFixed(fig === 'cpuMs' ? 1 : 0)
      console.log(
        `| ${kind === 'ours' ? 'node agent' : 'floor'} | ${n} | ${f(a, 'p50')} | ${f(a, 'p95')} | ${f(a, 'max')} | ${f(a, 'span')} | ${f(a, 'peakMiB')} | ${f(a, 'cpuMs')} | ${f(d, 'p50')} | ${f(d, 'p95')} | ${f(d, 'max')} | ${f(d, 'peakMiB')} | ${f(d, 'cpuMs')} |`,
      )
    }
  }
  const big = Math.max(...SIZES)
  const small = Math.min(...SIZES)
  const ratio = (x, y) => (x / y).toFixed(2)
  console.log(`targets: one ADD ${ratio(m(`ours ${small} ADD`, 'p50'), m(`floor ${small} ADD`, 'p50'))}x the floor's (<= 1.5);`)
  console.log(`  ${big}-pod burst p95 ${ratio(m(`ours ${big} ADD`, 'p95'), m(`floor ${big} ADD`, 'span'))}x the floor's span (<= 1.5);`)
  console.log(`  peak memory ${m(`ours ${big} ADD`, 'peakMiB').toFixed(0)} MiB under the ${big}-pod burst (< 200);`)
  console.log(
    `  DEL ${ratio(m(`ours ${small} DEL`, 'p50'), m(`ours ${small} ADD`, 'p50'))}x ADD for one pod, ${ratio(m(`ours ${big} DEL`, 'p95'), m(`ours ${big} ADD`, 'p95'))}x at p95 of ${big} (<= 1.2)`,
  )
}
