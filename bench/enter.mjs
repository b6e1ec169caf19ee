// Benchmark: two ways for one long-lived process to run a tool in a pod's netns, side by side: `nsenter --net=<netns>
// TOOL` (a process more per tool), and setns(2) on the calling thread, a spawn (which forks in the call), and setns
// back, as the node agent does (src/cni/pod-io.ts). Per run of `iptables-save` in a fresh namespace: wall time,
// and the CPU time of the children (the tool, and nsenter), from this process's reaped-children times. Run as root:
// `node bench/enter.mjs` (RUNS=200 per way, in alternating blocks of 20).
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { openSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const RUNS = Number(process.env.RUNS ?? 200)
const BLOCK = 20
const koffi = createRequire(import.meta.url)('koffi')
const libc = koffi.load('libc.so.6')
const setns = libc.func('int setns(int fd, int nstype)')
const CLONE_NEWNET = 0x40000000
const ns = `sr-bench-enter-${randomBytes(3).toString('hex')}`

const run = (file, args) =>
  new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.resume()
    child.stderr.resume()
    child.once('close', code => (code === 0 ? resolve() : reject(new Error(`${file} exited ${code}`))))
  })

// Reaped children's user + system time, in ms (clock ticks of 10 ms: read over many runs).
const childrenMs = () => {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')
  return (Number(fields[13]) + Number(fields[14])) * 10
}

execFileSync('ip', ['netns', 'add', ns])
try {
  const home = openSync('/proc/thread-self/ns/net', 'r')
  const pod = openSync(`/run/netns/${ns}`, 'r')
  const ways = {
    'nsenter per tool': () => run('nsenter', [`--net=/run/netns/${ns}`, 'iptables-save']),
    'setns + spawn': () => {
      if (setns(pod, CLONE_NEWNET) !== 0) throw new Error('setns failed: run as root')
      try {
        return run('iptables-save', [])
      } finally {
        if (setns(home, CLONE_NEWNET) !== 0) process.abort()
      }
    },
  }
  const totals = Object.fromEntries(Object.keys(ways).map(w => [w, { wall: 0, cpu: 0, runs: 0 }]))
  for (let done = 0; done < RUNS; done += BLOCK) {
    for (const [name, way] of Object.entries(ways)) {
      const [cpu, start] = [childrenMs(), performance.now()]
      for (let i = 0; i < BLOCK; i++) await way()
      totals[name].wall += performance.now() - start
      totals[name].cpu += childrenMs() - cpu
      totals[name].runs += BLOCK
    }
  }
  console.log(`one iptables-save in a pod's netns, ${RUNS} runs each way, alternating blocks of ${BLOCK}, ${process.version}`)
  console.log('| way | wall ms/run | children CPU ms/run |')
  console.log('| --- | ---: | ---: |')
  for (const [name, t] of Object.entries(totals)) console.log(`| ${name} | ${(t.wall / t.runs).toFixed(2)} | ${(t.cpu / t.runs).toFixed(2)} |`)
} finally {
  execFileSync('ip', ['netns', 'delete', ns])
}
