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
const inNs = (file, args, options = {}) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, file, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, ...options })
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
    rules: () => inNs('nft', ['list', 'table', 'inet', 'sidecar_redirect']).split('\n').filter(l => l.includes('comment "sidecar-redirect/')).length,
    clean: () => inNs(`${root}entrypoint`, ['clean'], { env: { ...env, ISTIO_BACKEND: 'nftables', ISTIO_SERVICES: '198.18.0.1' } }),
  },
  'ipset + iptables-nft': {
    apply: file => time(() => inNs(`${root}entrypoint`, ['init'], { env: { ...env, ISTIO_BACKEND: 'iptables-nft', ISTIO_SERVICES_FILE: file } })),
    rules: () => inNs('iptables-nft-save', ['-t', 'nat']).split('\n').filter(l => l.startsWith('-A ')).length,
    clean: () => inNs(`${root}entrypoint`, ['clean'], { env: { ...env, ISTIO_BACKEND: 'iptables-nft', ISTIO_SERVICES: '198.18.0.1' } }),
  },
  'naive: one rule per service': {
    apply: (_file, n) => {
      const rules = Array.from({ length: n }, (_, i) => `-A NAIVE -d ${service(i)}/32 -p tcp -m tcp --dport 9090 -j REDIRECT --to-ports 5001`)
      const payload = `*nat\n:NAIVE - [0:0]\n-I OUTPUT 1 -p tcp -j NAIVE\n${rules.join('\n')}\nCOMMIT\n`
      return time(() => inNs('iptables-nft-restore', ['--noflush'], { input: payload }))
    },
    rules: () => inNs('iptables-nft-save', ['-t', 'nat']).split('\n').filter(l => l.startsWith('-A ')).length,
    clean: () => inNs('sh', ['-c', 'iptables-nft -t nat -D OUTPUT -p tcp -j NAIVE; iptables-nft -t nat -F NAIVE; iptables-nft -t nat -X NAIVE']),
  },
}

execFileSync('ip', ['netns', 'add', ns])
try {
  inNs('ip', ['link', 'set', 'lo', 'up'])
  inNs('ip', ['link', 'add', 'bench0', 'type', 'veth', 'peer', 'name', 'bench1'])
  inNs('ip', ['addr', 'add', '198.19.254.1/24', 'dev', 'bench0'])
  for (const link of ['bench0', 'bench1']) inNs('ip', ['link', 'set', link, 'up'])
  inNs('ip', ['route', 'add', '198.18.0.0/16', 'dev', 'bench0', 'src', '198.19.254.1'])
  const rows = []
  for (const n of SIZES) {
    const file = `${dir}/services-${n}.txt`
    writeFileSync(file, Array.from({ length: n }, (_, i) => `${service(i)}:9090`).join('\n'))
    for (const [name, layout] of Object.entries(layouts)) {
      const applyMs = layout.apply(file, n)
      const rules = layout.rules()
      const { landed, rate } = JSON.parse(inNs(process.execPath, [`${root}bench/conn-rate.mjs`, service(n - 1), '9090', String(CONNECTIONS), '5001']))
      // A rare connect timeout (local port reuse) is not a capture failure; more than 0.1% would be.
      if (landed < CONNECTIONS * 0.999) throw new Error(`${name} at ${n}: only ${landed} of ${CONNECTIONS} connections were captured`)
      layout.clean()
      rows.push({ n, name, applyMs, rules, rate })
    }
  }
  console.log(`explicit-method benchmark: ${CONNECTIONS} sequential connections to the last listed service per cell`)
  console.log('| services | layout | apply ms | rules in the kernel | connections/s | rate vs 10 services |')
  console.log('| ---: | --- | ---: | ---: | ---: | ---: |')
  for (const row of rows) {
    const base = rows.find(r => r.name === row.name && r.n === SIZES[0])
    console.log(`| ${row.n} | ${row.name} | ${row.applyMs.toFixed(0)} | ${row.rules} | ${row.rate} | ${((row.rate / base.rate) * 100).toFixed(0)}% |`)
  }
} finally {
  execFileSync('ip', ['netns', 'delete', ns])
  rmSync(dir, { recursive: true, force: true })
}
