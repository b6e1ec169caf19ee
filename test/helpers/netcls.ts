// The cgroup method needs a net_cls hierarchy. Each test mounts it at a temporary directory of its own and hands
// that path to what it starts (ISTIO_NET_CLS_ROOT, --net-cls-root): the hierarchy is one for the whole machine, but
// a mount another test made may be unmounted by that test at any moment, so none is borrowed. The teardown stops
// the sandbox's processes first, so the group is empty, then removes what it made.
import { mkdtempSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import { realExec } from '../../src/exec/exec.js'
import { groupName } from '../../src/cgroup/net-cls.js'
import type { Sandbox } from '../../src/sandbox/sandbox.js'

let classids = 0

/**
 * A classid of this test process's own, so its group (named by the classid) is too: the hierarchy is the
 * machine's, and with one classid for every test, one test's teardown or another run's removed or emptied the group
 * another was using. The PID as the major number (PIDs of processes alive together differ, and pid_max is below
 * 0xfff0 here; the modulo keeps it a valid major elsewhere), a counter as the minor.
 */
export const uniqueClassid = (): number => ((process.pid % 0xfff0) + 1) * 0x10000 + ++classids

export const withNetCls = async (t: Test, box: Sandbox, classid: number): Promise<string> => {
  const root = mkdtempSync(`${tmpdir()}/sr-net-cls-`)
  await realExec('mount', ['-t', 'cgroup', '-o', 'net_cls', 'net_cls', root])
  t.teardown(async () => {
    await box.destroy()
    // Another test (or run) may still use the shared group: then it stays for that test's teardown.
    try {
      rmdirSync(`${root}/${groupName(classid)}`)
    } catch {
      // busy or already gone
    }
    await realExec('umount', [root]).catch(() => undefined)
    rmdirSync(root)
  })
  return root
}
