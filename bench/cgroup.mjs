// A cgroup of the benchmark's own for one process tree (a node agent and the tools it starts), under this
// process's own cgroup so nothing else is touched: its peak memory and its CPU time, measured by the kernel.
// cgroup v1 (memory and cpuacct hierarchies) or v2 (one group with the memory controller), as the machine has.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'

const ownPath = controller => {
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers, path] = line.split(':')
    if (controller === '' ? controllers === '' : controllers.split(',').includes(controller)) return path
  }
  return undefined
}

/** createCgroup makes a group named `name`; a process joins it by writing its PID to `procs` before it starts its work. */
export const createCgroup = name => {
  const v1Memory = ownPath('memory')
  if (v1Memory !== undefined && existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) {
    const memory = `/sys/fs/cgroup/memory${v1Memory}/${name}`
    const cpuPath = ownPath('cpuacct')
    const cpu = cpuPath === undefined ? undefined : `/sys/fs/cgroup/cpuacct${cpuPath}/${name}`
    mkdirSync(memory)
    if (cpu) mkdirSync(cpu)
    return {
      procs: [`${memory}/cgroup.procs`, ...(cpu ? [`${cpu}/cgroup.procs`] : [])],
      limit: bytes => writeFileSync(`${memory}/memory.limit_in_bytes`, String(bytes)),
      peakBytes: () => Number(readFileSync(`${memory}/memory.max_usage_in_bytes`, 'utf8')),
      resetPeak: () => writeFileSync(`${memory}/memory.max_usage_in_bytes`, '0'),
      ooms: () => Number(/oom_kill (\d+)/.exec(readFileSync(`${memory}/memory.oom_control`, 'utf8'))?.[1] ?? 0),
      cpuNs: () => (cpu ? Number(readFileSync(`${cpu}/cpuacct.usage`, 'utf8')) : Number.NaN),
      remove: () => {
        for (const dir of [memory, cpu].filter(Boolean)) rmdirSync(dir)
      },
    }
  }
  const v2 = `/sys/fs/cgroup${ownPath('') ?? '/'}/${name}`.replace(/\/+/g, '/')
  mkdirSync(v2)
  return {
    procs: [`${v2}/cgroup.procs`],
    limit: bytes => writeFileSync(`${v2}/memory.max`, String(bytes)),
    peakBytes: () => Number(readFileSync(`${v2}/memory.peak`, 'utf8')),
    // Linux 6.12+: writing to memory.peak resets it (for the writer's open file; reads through a new one see the rest).
    resetPeak: () => undefined,
    ooms: () => Number(/oom_kill (\d+)/.exec(readFileSync(`${v2}/memory.events`, 'utf8'))?.[1] ?? 0),
    cpuNs: () => Number(/usage_usec (\d+)/.exec(readFileSync(`${v2}/cpu.stat`, 'utf8'))?.[1] ?? Number.NaN) * 1000,
    remove: () => rmdirSync(v2),
  }
}

/** The argv that starts `argv` inside the group (sh joins it, then execs). */
export const inCgroup = (group, argv) => ['sh', '-c', `for f in ${group.procs.join(' ')}; do echo $$ > "$f"; done; exec "$@"`, 'sh', ...argv]
