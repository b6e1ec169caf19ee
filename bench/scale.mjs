// Benchmark: the explicit method at 1,000, 10,000 and 100,000 services, side by side in one run: our whole init
// (wall and peak memory, and each phase from its report) for each set layout, beside the bare tools' own apply and
// read of the same members, and the growth exponent of each figure (the slope of log time over log size; 1 is
// linear). Each cell runs in a fresh namespace, rounds alternate, figures are medians. Run as root after a build:
// `npm run bench:scale` (ROUNDS=3 by default; NODE=path picks the Node that runs init, default the image's Node 24).
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname } from 'node:path'
import { node24 } from './node24.mjs'

const SIZES = (process.env.SIZES ?? '1000,10000,100000').split(',').map(Number)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const node = process.env.NODE ?? node24()
const root = new URL('..', import.meta.url).pathname
const dir = mkdtempSync(`${tmpdir()}/sr-scale-`)
const ns = `sr-scale-${randomBytes(3).toString('hex')}`
const inNs = (file, args, options = {}) =>
  execFileSync('nsenter', [`--net=/run/netns/${ns}`, file, ...args], { encoding: 'utf8', maxBuffer: 1 << 30, ...options })
const env = { ...process.env, ISTIO_VERIFY: 'rules', ISTIO_LOG_FORMAT: 'json', ISTIO_IPV6: 'false', ISTIO_OUTBOUND_METHOD: 'explicit' }
delete env.NODE_OPTIONS
// GNU time reports the peak resident set of the process it runs (init itself; its children are counted apart).
const timeTool = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined

// Service i: a distinct address in 198.18.0.0/15 (a test range), port 443.
const address = i => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
const elapsed = run => {
  const start = performance.now()
  run()
  return performance.now() - start
}

const ourInit = backend => file => {
  // As the image runs it: `entrypoint` by its first line, which finds this Node on PATH and passes its flags.
  const args = [`${root}entrypoint`, 'init']
  const argv = timeTool ? [timeTool, '-f', 'peak-kb %M', ...args] : args
  let result
  const options = {
    env: { ...env, ISTIO_BACKEND: backend, ISTIO_SERVICES_FILE: file, PATH: `${dirname(node)}:${process.env.PATH}` },
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  }
  const wall = elapsed(() => (result = spawnSync('nsenter', [`--net=/run/netns/${ns}`, ...argv], options)))
  if (result.status !== 0) throw new Error(`init failed: ${result.stdout}${result.stderr}`)
  const report = JSON.parse(result.stdout.split('\n').find(l => l.startsWith('{')))
  const peak = /peak-kb (\d+)/.exec(result.stderr)?.[1]
  return { wall, timings: report.timings, peakMB: peak === undefined ? NaN : Number(peak) / 1024 }
}

const bare = {
  ipset: n => {
    const lines = [`create BARE hash:net,port family inet hashsize ${2 ** Math.ceil(Math.log2(Math.max(1024, n)))} maxelem ${Math.max(65536, n)}`]
    for (let i = 0; i < n; i++) lines.push(`add BARE ${address(i)},tcp:443`)
    const payload = `${lines.join('\n')}\n`
    return { apply: elapsed(() => inNs('ipset', ['restore'], { input: payload })), read: elapsed(() => inNs('ipset', ['save', 'BARE'])) }
  },
  nft: n => {
    const elements = Array.from({ length: n }, (_, i) => `${address(i)} . 443`).join(', ')
    const payload = `table inet bare {\n\tset s {\n\t\ttype ipv4_addr . inet_service\n\t\tflags interval\n\t\telements = { ${elements} }\n\t}\n}\n`
    return { apply: elapsed(() => inNs('nft', ['-f', '-'], { input: payload })), read: elapsed(() => inNs('nft', ['list', 'table', 'inet', 'bare'])) }
  },
}

const inFreshNamespace = work => {
  execFileSync('ip', ['netns', 'add', ns])
  try {
    inNs('ip', ['link', 'set', 'lo', 'up'])
    return work()
  } finally {
    execFileSync('ip', ['netns', 'delete', ns])
  }
}

const median = values => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
// Least-squares slope of log(y) over log(n).
const exponent = points => {
  const xs = points.map(p => Math.log(p.n))
  const ys = points.map(p => Math.log(Math.max(p.y, 0.1)))
  const mx = xs.reduce((a, b) => a + b) / xs.length
  const my = ys.reduce((a, b) => a + b) / ys.length
  return xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0) / xs.reduce((s, x) => s + (x - mx) ** 2, 0)
}

const LAYOUTS = {
  'nftables sets': { init: ourInit('nftables'), bare: bare.nft },
  'ipset + iptables-nft': { init: ourInit('iptables-nft'), bare: bare.ipset },
}
const FIGURES = ['wall', 'settingsMs', 'planMs', 'applyMs', 'read-backMs', 'peakMB', 'bare apply', 'bare read']

try {
  for (const n of SIZES) writeFileSync(`${dir}/services-${n}.txt`, `${Array.from({ length: n }, (_, i) => `${address(i)}:443`).join('\n')}\n`)
  const cells = SIZES.flatMap(n => Object.keys(LAYOUTS).map(layout => ({ n, layout, samples: Object.fromEntries(FIGURES.map(f => [f, []])) })))
  for (let round = 0; round < ROUNDS; round++) {
    for (const cell of cells) {
      const { init, bare: tools } = LAYOUTS[cell.layout]
      inFreshNamespace(() => {
        const ours = init(`${dir}/services-${cell.n}.txt`)
        cell.samples.wall.push(ours.wall)
        cell.samples.peakMB.push(ours.peakMB)
        for (const phase of ['settingsMs', 'planMs', 'applyMs', 'read-backMs']) cell.samples[phase].push(ours.timings[phase])
        const tools_ = tools(cell.n)
        cell.samples['bare apply'].push(tools_.apply)
        cell.samples['bare read'].push(tools_.read)
      })
    }
  }
  console.log(
    `explicit method at scale, ${new Date().toISOString().slice(0, 10)}, init under ${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()}: medians over ${ROUNDS} alternating rounds, ms`,
  )
  console.log(`| layout | services | init wall | peak MB | settings | plan | apply | read-back | bare apply | bare read |`)
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const c of cells) {
    const m = f => median(c.samples[f]).toFixed(0)
    console.log(
      `| ${c.layout} | ${c.n} | ${m('wall')} | ${m('peakMB')} | ${m('settingsMs')} | ${m('planMs')} | ${m('applyMs')} | ${m('read-backMs')} | ${m('bare apply')} | ${m('bare read')} |`,
    )
  }
  console.log('\ngrowth exponent (1.0 = linear), fitted over the sizes:')
  for (const layout of Object.keys(LAYOUTS)) {
    const fit = f => exponent(cells.filter(c => c.layout === layout).map(c => ({ n: c.n, y: median(c.samples[f]) }))).toFixed(2)
    console.log(
      `  ${layout}: ${['wall', 'settingsMs', 'planMs', 'applyMs', 'read-backMs', 'bare apply', 'bare read'].map(f => `${f} ${fit(f)}`).join(', ')}`,
    )
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
