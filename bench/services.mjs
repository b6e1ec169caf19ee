// Benchmark for the explicit method: 10, 1,000 and 10,000 services, measured side by side in one run, for our
// set layouts (nftables sets, and ipset with iptables-nft) against the naive one-rule-per-service layout this
// benchmark builds itself (iptables-nft, one REDIRECT rule per service). Reports the time to apply, the rules in
// the kernel, and the connection setup rate to the *last* listed service (the worst case for a linear chain).
// Everything stays inside a throwaway namespace: the services' addresses are routed into a veth whose peer is in
// the same namespace, and captured connections are redirected to a local listener. Run as root after a build.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'

const SIZES = (process.env.SIZES ?? '10,1000,10000').split(',').map(Number)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 1000)
const root = new URL('..', import.meta.url).pathname
const ns = `sr-bench-${randomBytes(3).toString('hex')}`
const dir = mkdtempSync(`${tmpdir()}/sr-bench-`)
const inNs = (file, args, options = {}) =>
  execFileSync('nsenter', [`--net=/run/netns/${ns}`, file, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, ...options })
const env = { ...process.env, ISTIO_VERIFY: 'rules', ISTIO_LOG_FORMAT: 'json', ISTIO_IPV6: 'false', ISTIO_OUTBOUND_METHOD: 'explicit' }
delete env.NODE_OPTIONS

// Service i: 198.18.(i / 250).(i % 250 + 1), port 9090: all inside the benchmark range 198.18.0.0/15.
const service = i => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`
const time = run => {
  const start = performance.now()
  run()
  return performance.now() - start
}

const layouts = {
  'nftables sets': {
    apply: file => time(() => inNs(`${root}entrypoint`, ['init'], { env: { ...env, ISTIO_BACKEND: 'nftables', ISTIO_SERVICES_FILE: file } })),
    rules: () =>
      inNs('nft', ['list', 'table', 'inet', 'sidecar_redirect'])
        .split('\n')
        .filter(l => l.includes('comment "sidecar-redirect/')).length,
  },
  'ipset + iptables-nft': {
    apply: file => time(() => inNs(`${root}entrypoint`, ['init'], { env: { ...env, ISTIO_BACKEND: 'iptables-nft', ISTIO_SERVICES_FILE: file } })),
    rules: () =>
      inNs('iptables-nft-save', ['-t', 'nat'])
        .split('\n')
        .filter(l => l.startsWith('-A ')).length,
  },
  'naive: one rule per service': {
    apply: (_file, n) => {
      const rules = Array.from({ length: n }, (_, i) => `-A NAIVE -d ${service(i)}/32 -p tcp -m tcp --dport 9090 -j REDIRECT --to-ports 5001`)
      const payload = `*nat\n:NAIVE - [0:0]\n-I OUTPUT 1 -p tcp -j NAIVE\n${rules.join('\n')}\nCOMMIT\n`
      return time(() => inNs('iptables-nft-restore', ['--noflush'], { input: payload }))
    },
    rules: () =>
      inNs('iptables-nft-save', ['-t', 'nat'])
        .split('\n')
        .filter(l => l.startsWith('-A ')).length,
  },
}

// A fresh namespace per cell: thousands of connections leave TIME_WAIT sockets and conntrack entries behind, which
// would slow whichever cell came later and confound the layouts with the order they ran in.
const inFreshNamespace = work => {
  execFileSync('ip', ['netns', 'add', ns])
  try {
    inNs('ip', ['link', 'set', 'lo', 'up'])
    inNs('ip', ['link', 'add', 'bench0', 'type', 'veth', 'peer', 'name', 'bench1'])
    inNs('ip', ['addr', 'add', '198.19.254.1/24', 'dev', 'bench0'])
    for (const link of ['bench0', 'bench1']) inNs('ip', ['link', 'set', link, 'up'])
    inNs('ip', ['route', 'add', '198.18.0.0/16', 'dev', 'bench0', 'src', '198.19.254.1'])
    return work()
  } finally {
    execFileSync('ip', ['netns', 'delete', ns])
  }
}

const ROUNDS = Number(process.env.ROUNDS ?? 5)
const median = values => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

try {
  const cells = SIZES.flatMap(n => Object.keys(layouts).map(name => ({ n, name, applyMs: [], rates: [], rules: 0 })))
  for (const n of SIZES) writeFileSync(`${dir}/services-${n}.txt`, Array.from({ length: n }, (_, i) => `${service(i)}:9090`).join('\n'))
  // Every cell once per round, rounds alternating, each in a fresh namespace; medians over the rounds, so a
  // slow moment of this shared machine hits every cell alike instead of one.
  for (let round = 0; round < ROUNDS; round++) {
    for (const cell of cells) {
      const layout = layouts[cell.name]
      inFreshNamespace(() => {
        cell.applyMs.push(layout.apply(`${dir}/services-${cell.n}.txt`, cell.n))
        cell.rules = layout.rules()
        const { landed, rate } = JSON.parse(
          inNs(process.execPath, [`${root}bench/conn-rate.mjs`, service(cell.n - 1), '9090', String(CONNECTIONS), '5001']),
        )
        // A rare connect timeout is not a capture failure (seen only on the slow naive path); more than 1% would be.
        if (landed < CONNECTIONS * 0.99) throw new Error(`${cell.name} at ${cell.n}: only ${landed} of ${CONNECTIONS} connections were captured`)
        cell.rates.push(rate)
      })
    }
  }
  const rows = cells.map(c => ({ n: c.n, name: c.name, applyMs: median(c.applyMs), rules: c.rules, rate: median(c.rates) }))
  console.log(
    `explicit-method benchmark: medians over ${ROUNDS} alternating rounds of ${CONNECTIONS} sequential connections to the last listed service`,
  )
  console.log('| services | layout | apply ms | rules in the kernel | connections/s | rate vs 10 services |')
  console.log('| ---: | --- | ---: | ---: | ---: | ---: |')
  for (const row of rows) {
    const base = rows.find(r => r.name === row.name && r.n === SIZES[0])
    console.log(`| ${row.n} | ${row.name} | ${row.applyMs.toFixed(0)} | ${row.rules} | ${row.rate} | ${((row.rate / base.rate) * 100).toFixed(0)}% |`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
