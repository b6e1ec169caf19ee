// Benchmark: what init adds to a pod's start, measured side by side in one run, alternating the contenders so
// machine noise hits them alike. Run as root: `npm run bench` (after `npm run build`).
//   node -e 0           an empty Node start: the floor for any Node entrypoint
//   iptables-restore    the same rules loaded bare (one restore per family), no checks
//   init (fresh)        ./entrypoint init into a namespace without our rules (apply + read-back)
//   init (re-run)       ./entrypoint init over its own rules (read, compare, nothing to write)
//   init (fresh, live)  as init (fresh), plus the live probe (ISTIO_VERIFY=live, the default)
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'

const ROUNDS = Number(process.env.ROUNDS ?? 30)
const root = new URL('..', import.meta.url).pathname
const ns = `sr-bench-${randomBytes(3).toString('hex')}`
const inNs = (file, args, options = {}) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, file, ...args], { encoding: 'utf8', ...options })
const env = { ...process.env, ISTIO_VERIFY: 'rules', ISTIO_LOG_FORMAT: 'json' }
delete env.NODE_OPTIONS
const liveEnv = { ...env, ISTIO_VERIFY: 'live' }

const payload = execFileSync(`${root}entrypoint`, ['plan'], { encoding: 'utf8', env }).split(/^# ipv6.*\n/m)
const clean = () => inNs(`${root}entrypoint`, ['clean'], { env })

const contenders = {
  'node -e 0': { before: () => undefined, run: () => inNs(process.execPath, ['-e', '0']) },
  'iptables-restore': {
    before: clean,
    run: () => {
      inNs('iptables-restore', ['--noflush'], { input: payload[0] })
      inNs('ip6tables-restore', ['--noflush'], { input: payload[1] })
    },
  },
  'init (fresh)': { before: clean, run: () => inNs(`${root}entrypoint`, ['init'], { env }) },
  'init (re-run)': { before: () => undefined, run: () => inNs(`${root}entrypoint`, ['init'], { env }) },
  'init (fresh, live)': { before: clean, run: () => inNs(`${root}entrypoint`, ['init'], { env: liveEnv }) },
}

const median = values => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

execFileSync('ip', ['netns', 'add', ns])
try {
  inNs('ip', ['link', 'set', 'lo', 'up'])
  // A pod address for the live probe to connect to (198.18.0.0/15: a test range, and the traffic stays local).
  inNs('ip', ['link', 'add', 'bench0', 'type', 'veth', 'peer', 'name', 'bench1'])
  inNs('ip', ['addr', 'add', '198.18.9.1/24', 'dev', 'bench0'])
  inNs('ip', ['addr', 'add', '2001:db8:9::1/64', 'dev', 'bench0', 'nodad'])
  for (const link of ['bench0', 'bench1']) inNs('ip', ['link', 'set', link, 'up'])
  const samples = Object.fromEntries(Object.keys(contenders).map(name => [name, []]))
  for (let round = 0; round < ROUNDS + 2; round++) {
    for (const [name, { before, run }] of Object.entries(contenders)) {
      before()
      const start = performance.now()
      run()
      if (round >= 2) samples[name].push(performance.now() - start) // two warm-up rounds
    }
  }
  clean()
  const report = JSON.parse(inNs(`${root}entrypoint`, ['init'], { env: liveEnv }))
  const floor = median(samples['node -e 0'])
  console.log(`sidecar-redirect init benchmark: ${ROUNDS} alternating rounds, medians (each run includes one nsenter)`)
  console.log('| contender | median ms | vs node -e 0 |')
  console.log('| --- | ---: | ---: |')
  for (const [name, values] of Object.entries(samples)) {
    console.log(`| ${name} | ${median(values).toFixed(1)} | ${(median(values) / floor).toFixed(2)}x |`)
  }
  const inside = report.timings
  console.log(`\nprocesses started by init: ${report.processes} (${report.families.split(':')[0]})`)
  console.log(`inside init (fresh, live): probe ${inside.probeMs} ms, apply ${inside.applyMs} ms, read-back ${inside['read-backMs']} ms, live probe ${inside.liveMs} ms, total ${inside.totalMs} ms`)
  console.log(`outside that (Node start + module loading): ~${(median(samples['init (fresh, live)']) - inside.totalMs).toFixed(1)} ms`)
} finally {
  execFileSync('ip', ['netns', 'delete', ns])
}
