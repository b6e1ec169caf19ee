// The cgroup method needs a net_cls hierarchy. Tests mount one at a temporary directory (or use one already
// mounted); the teardown stops the sandbox's processes first, so the group is empty, then removes what it made.
import { mkdtempSync, readFileSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import { realExec } from '../../src/exec/exec.js'
import { findNetClsMount, groupName } from '../../src/cgroup/net-cls.js'
import type { Sandbox } from '../../src/commands/sandbox.js'

export const withNetCls = async (t: Test, box: Sandbox, classid: number): Promise<string> => {
  const existing = findNetClsMount(readFileSync('/proc/self/mountinfo', 'utf8'))
  const root = existing ?? mkdtempSync(`${tmpdir()}/sr-net-cls-`)
  if (!existing) await realExec('mount', ['-t', 'cgroup', '-o', 'net_cls', 'net_cls', root])
  t.teardown(async () => {
    await box.destroy()
    // Another test may still use the shared group: then it stays for that test's teardown.
    try {
      rmdirSync(`${root}/${groupName(classid)}`)
    } catch {
      // busy or already gone
    }
    if (!existing) {
      await realExec('umount', [root]).catch(() => undefined)
      rmdirSync(root)
    }
  })
  return root
}
