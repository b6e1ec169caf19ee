// Benchmark: what init adds to a pod's start, measured side by side in one run, alternating every contender so
// machine noise hits them alike, under the image's Node 24 and under this machine's Node. Run as root after a
// build: `npm run bench`. init runs as the image runs it: `entrypoint` started by its own first line, with the Node
// under test first on PATH (it keeps Node's compile cache in dist/.cache; the warm-up rounds fill it, as the
// image's build does). Each contender's median wall time, and its median CPU time (its whole tree of processes).
//   node -e 0           an empty Node start: the floor for any Node entrypoint
//   bare tools          what a compiled tool pays: iptables-restore and iptables-save of our payload, per family
//   init (fresh)        init into a namespace without our rules (apply, read-back, whole-path check)
//   init (re-run)       init over its own rules (one read per family and the ruleset, nothing written)
//   init (fresh, live)  init (fresh) plus the live probe (ISTIO_VERIFY=live, the default)
//   verify              verify over init's rules (reads them back, changes nothing)
//   floor (fresh), floor (re-run)   bench/floor.mjs: Node starting init's processes in init's rounds, and nothing else
//   <name> init (fresh), <name> init (re-run), <name> init (fresh, live), <name> verify
//                       with BEFORE=<another checkout, built> (several: separated by spaces, each named by its
//                       directory's name): its commands, in the same rounds (e.g. main's, to show that a change
//                       costs init nothing, or builds made other ways, to show what a build step buys)
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { basename, dirname } from 'node:path'
import { node24 } from './node24.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 30)
const root = new URL('..', import.meta.url).pathname
const ns = `sr-bench-${randomBytes(3).toString('hex')}`
const inNs = (file, args, options = {}) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, file, ...args], { encoding: 'utf8', ...options })
const env = { ...process.env, ISTIO_VERIFY: 'rules', ISTIO_LOG_FORMAT: 'json' }
delete env.NODE_OPTIONS
const liveEnv = { ...env, ISTIO_VERIFY: 'live' }
const cli = `${root}entrypoint`
const befores = (process.env.BEFORE ?? '')
  .split(/\s+/)
  .filter(Boolean)
  .map(dir => dir.replace(/\/$/, ''))
const beforeClis = Object.fromEntries(befores.map(dir => [befores.length === 1 ? 'before' : basename(dir), `${dir}/entrypoint`]))

const nodes = { 'node 24': node24(), [`node ${process.versions.node.split('.')[0]}`]: process.execPath }
const payload = execFileSync(process.execPath, [cli, 'plan'], { encoding: 'utf8', env }).split(/^# ipv6.*\n/m)
const clean = () => inNs(process.execPath, [cli, 'clean'], { env })
const payloadFile = `${tmpdir()}/${ns}-payload`
writeFileSync(payloadFile, payload.join('# ipv6\n'))
const floor = `${root}bench/floor.mjs`

const contenders = {
  'bare tools': {
    before: clean,
    run: () => {
      inNs('iptables-restore', ['--noflush'], { input: payload[0] })
      inNs('ip6tables-restore', ['--noflush'], { input: payload[1] })
      inNs('iptables-save', [])
      inNs('ip6tables-save', [])
    },
  },
}
// `entrypoint` finds Node through PATH (#!/usr/bin/env), so this picks the Node it runs under.
const under = (node, base) => ({ ...base, PATH: `${dirname(node)}:${process.env.PATH}` })
for (const [label, node] of Object.entries(nodes)) {
  contenders[`${label}: node -e 0`] = { before: () => undefined, run: () => inNs(node, ['-e', '0']) }
  contenders[`${label}: floor (fresh)`] = { before: clean, run: () => inNs(node, [floor, 'fresh', payloadFile]) }
  contenders[`${label}: floor (re-run)`] = { before: () => undefined, run: () => inNs(node, [floor, 're-run']) }
  contenders[`${label}: init (fresh)`] = { before: clean, run: () => inNs(cli, ['init'], { env: under(node, env) }) }
  contenders[`${label}: init (re-run)`] = { before: () => undefined, run: () => inNs(cli, ['init'], { env: under(node, env) }) }
  contenders[`${label}: init (fresh, live)`] = { before: clean, run: () => inNs(cli, ['init'], { env: under(node, liveEnv) }) }
  contenders[`${label}: verify`] = { before: () => undefined, run: () => inNs(cli, ['verify'], { env: under(node, env) }) }
  for (const [name, other] of Object.entries(beforeClis)) {
    contenders[`${label}: ${name} init (fresh)`] = { before: clean, run: () => inNs(other, ['init'], { env: under(node, env) }) }
    contenders[`${label}: ${name} init (re-run)`] = { before: () => undefined, run: () => inNs(other, ['init'], { env: under(node, env) }) }
    contenders[`${label}: ${name} init (fresh, live)`] = { before: clean, run: () => inNs(other, ['init'], { env: under(node, liveEnv) }) }
    contenders[`${label}: ${name} verify`] = { before: () => undefined, run: () => inNs(other, ['verify'], { env: under(node, env) }) }
  }
}

const median = values => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

// The CPU time (user + system) of every process this one has reaped, in ms, to the microsecond: getrusage(2)
// RUSAGE_CHILDREN, whose struct rusage starts with ru_utime and ru_stime (two struct timevals of two longs each).
// A run's CPU time is less at the mercy of other work on a shared machine than its wall time.
const getrusage = createRequire(import.meta.url)('koffi')
  .load('libc.so.6')
  .func('int getrusage(int who, void *usage)')
const childrenCpuMs = () => {
  const usage = Buffer.alloc(144)
  if (getrusage(-1, usage) !== 0) throw new Error('getrusage failed')
  const [us, uu, ss, su] = [0, 8, 16, 24].map(at => Number(usage.readBigInt64LE(at)))
  return (us + ss) * 1e3 + (uu + su) / 1e3
}

execFileSync('ip', ['netns', 'add', ns])
try {
  inNs('ip', ['link', 'set', 'lo', 'up'])
  // A pod address for the live probe to connect to (198.18.0.0/15: a test range, and the traffic stays local).
  inNs('ip', ['link', 'add', 'bench0', 'type', 'veth', 'peer', 'name', 'bench1'])
  inNs('ip', ['addr', 'add', '198.18.9.1/24', 'dev', 'bench0'])
  inNs('ip', ['addr', 'add', '2001:db8:9::1/64', 'dev', 'bench0', 'nodad'])
  for (const link of ['bench0', 'bench1']) inNs('ip', ['link', 'set', link, 'up'])
  const samples = Object.fromEntries(Object.keys(contenders).map(name => [name, []]))
  const cpu = Object.fromEntries(Object.keys(contenders).map(name => [name, []]))
  for (let round = 0; round < ROUNDS + 2; round++) {
    for (const [name, { before, run }] of Object.entries(contenders)) {
      before()
      const [startCpu, start] = [childrenCpuMs(), performance.now()]
      run()
      if (round < 2) continue // two warm-up rounds
      samples[name].push(performance.now() - start)
      cpu[name].push(childrenCpuMs() - startCpu)
    }
  }
  const machine = execFileSync('sh', ['-c', 'echo "$(nproc) cores, $(uname -r)"'], { encoding: 'utf8' }).trim()
  console.log(
    `sidecar-redirect init benchmark, ${new Date().toISOString().slice(0, 10)}, ${machine}: ${ROUNDS} alternating rounds, medians (each run includes one nsenter)`,
  )
  console.log('| contender | median ms | vs node -e 0 of the same Node | CPU ms (user + system, all its processes) |')
  console.log('| --- | ---: | ---: | ---: |')
  for (const [name, values] of Object.entries(samples)) {
    const label = name.split(':')[0]
    const floor = samples[`${label}: node -e 0`] ?? samples['node 24: node -e 0']
    console.log(`| ${name} | ${median(values).toFixed(1)} | ${(median(values) / median(floor)).toFixed(2)}x | ${median(cpu[name]).toFixed(1)} |`)
  }
  for (const [label, node] of Object.entries(nodes)) {
    clean()
    const fresh = JSON.parse(inNs(cli, ['init'], { env: under(node, liveEnv) }))
    const again = JSON.parse(inNs(cli, ['init'], { env: under(node, env) }))
    const t = fresh.timings
    console.log(
      `\n${label} (${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()}): processes fresh ${fresh.processes}, re-run ${again.processes}`,
    )
    console.log(
      `  inside init (fresh, live): Node reached our code at ${t.nodeStartMs} ms; then settings ${t.settingsMs}, probe ${t.probeMs}, plan ${t.planMs}, apply ${t.applyMs}, read-back ${t['read-backMs']}, live ${t.liveMs}; total ${t.totalMs} ms`,
    )
  }
} finally {
  execFileSync('ip', ['netns', 'delete', ns])
  rmSync(payloadFile, { force: true })
}
