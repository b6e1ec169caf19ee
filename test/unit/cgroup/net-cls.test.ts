// Writes into the net_cls hierarchy when it is not (or no longer) there, without root: a directory where the
// hierarchy was mounted a moment ago is a plain one, and nothing may be written into it.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import { ensureNetClsGroup, groupName, isInGroupFor, joinGroup } from '../../../src/cgroup/net-cls.js'

const plainDir = (t: Test): string => {
  const dir = mkdtempSync(`${tmpdir()}/sr-net-cls-plain-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('joining a "group" that is a plain directory fails with ENOENT and creates no cgroup.procs', async t => {
  const dir = plainDir(t)
  const group = `${dir}/${groupName(0x100001)}`
  mkdirSync(group)
  await t.rejects(joinGroup(group, process.pid), { code: 'ENOENT' })
  t.same(readdirSync(group), [], 'no file was made: a plain file would move nobody and look like success')
})

t.test('a root that is not a cgroup filesystem is refused before anything is made', async t => {
  const dir = plainDir(t)
  await t.rejects(ensureNetClsGroup(dir, 0x100001), /is not \(or no longer\) a cgroup filesystem/)
  t.same(readdirSync(dir), [])
})

t.test('membership by name where the hierarchy is not mounted here', async t => {
  // This process is in no group of ours: by the name in /proc/self/cgroup, whatever is mounted.
  t.equal(await isInGroupFor('self', 0x100001, '/nonexistent'), false)
})
