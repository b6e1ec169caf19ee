// cgroups of the unified (v2) hierarchy standing in for pods: the classifier counts a peer by its cgroup. Names are
// unique per run; the teardown stops the sandbox's processes first, so the groups are empty, then removes them.
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import type { Sandbox } from '../../src/sandbox/sandbox.js'
import { realExec } from '../../src/exec/exec.js'

let made = 0

const cgroup2Mount = (): string | undefined =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find(line => line.split(' - ')[1]?.startsWith('cgroup2 '))
    ?.split(' ')[4]

/** withCgroups makes one v2 cgroup per name and returns each one's directory, by name. */
export const withCgroups = async (t: Test, box: Sandbox, names: readonly string[]): Promise<Record<string, string>> => {
  let mount = cgroup2Mount()
  const own = mount === undefined ? mkdtempSync(`${tmpdir()}/sr-cgroup2-`) : undefined
  if (own !== undefined) await realExec('mount', ['-t', 'cgroup2', 'none', own])
  mount ??= own!
  const dirs = Object.fromEntries(names.map(name => [name, `${mount}/sr-${process.pid}-${++made}-${name}`]))
  for (const dir of Object.values(dirs)) mkdirSync(dir)
  t.teardown(async () => {
    await box.destroy()
    // A process just killed may hold its cgroup for a moment more (EBUSY).
    for (const dir of Object.values(dirs)) {
      for (let attempt = 1; ; attempt++) {
        try {
          rmdirSync(dir)
          break
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EBUSY' || attempt >= 100) throw error
          await new Promise(resolve => setTimeout(resolve, 50))
        }
      }
    }
    if (own !== undefined) {
      await realExec('umount', [own])
      rmdirSync(own)
    }
  })
  return dirs
}

/** The argv that runs `argv` inside the cgroup at `dir`. */
export const inCgroup = (dir: string, argv: readonly string[]): [string, string[]] => [
  'sh',
  ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...argv],
]
