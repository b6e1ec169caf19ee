// The net_cls cgroup (v1) that the cgroup method keys on: every socket a process creates carries its cgroup's
// classid, and `-m cgroup --cgroup ID` matches it. Membership is inherited at fork, so a process that joins the
// group before starting the proxy has every proxy process (restarts too) classified from its first instruction.

import { constants } from 'node:fs'
import { mkdir, readFile, rmdir, stat, statfs, writeFile } from 'node:fs/promises'
import type { Exec } from '../exec/exec.js'
import { PrivilegeError } from '../errors.js'

/** findNetClsMounts lists where the net_cls hierarchy is mounted, in /proc/self/mountinfo order. Pure. */
export const findNetClsMounts = (mountinfo: string): string[] => {
  const mounts: string[] = []
  for (const line of mountinfo.split('\n')) {
    // mount-id parent major:minor root mount-point options [optional...] - fstype source super-options
    const [left = '', right = ''] = line.split(' - ')
    const [fstype, , superOptions = ''] = right.split(' ')
    const point = left.split(' ')[4]?.replace(/\\040/g, ' ')
    if (fstype === 'cgroup' && superOptions.split(',').includes('net_cls') && point !== undefined) mounts.push(point)
  }
  return mounts
}

/** findNetClsMount returns the first place the net_cls hierarchy is mounted, from /proc/self/mountinfo text. Pure. */
export const findNetClsMount = (mountinfo: string): string | undefined => findNetClsMounts(mountinfo)[0]

// statfs(2)'s f_type of a cgroup v1 filesystem (linux/magic.h).
const CGROUP_SUPER_MAGIC = 0x27e0eb

// A mount point listed a moment ago may be unmounted by now, and is then a plain directory where writing
// cgroup.procs creates a file and moves nobody: so every write into the hierarchy first checks it is one.
const isCgroupFs = async (path: string): Promise<boolean> => (await statfs(path).catch(() => undefined))?.type === CGROUP_SUPER_MAGIC

// ...and the check and the write are two steps: the mount may go between them. So a write into the hierarchy opens
// a file the kernel made and never creates one (no O_CREAT): where the hierarchy was, it fails with ENOENT
// instead of leaving a plain file behind that moves nobody.
const writeKernelFile = (path: string, text: string): Promise<void> => writeFile(path, text, { flag: constants.O_WRONLY })

export const groupName = (classid: number): string => `sidecar-redirect-${classid.toString(16)}`

/**
 * netClsMount is where this process sees the net_cls hierarchy mounted, if anywhere: `preferred` when it is one of
 * its mount points, else the first listed, skipping any that is no longer a cgroup filesystem.
 */
export const netClsMount = async (preferred?: string): Promise<string | undefined> => {
  const listed = findNetClsMounts(await readFile('/proc/self/mountinfo', 'utf8'))
  const candidates = preferred !== undefined && listed.includes(preferred) ? [preferred, ...listed] : listed
  for (const path of candidates) if (await isCgroupFs(path)) return path
  return undefined
}

/** mountNetCls returns where the hierarchy is mounted (`root` first, if it is a mount of it), mounting it at `root` if it is mounted nowhere. */
export const mountNetCls = async (root: string, exec: Exec): Promise<string> => {
  const mounted = await netClsMount(root)
  if (mounted) return mounted
  try {
    await mkdir(root, { recursive: true })
    await exec('mount', ['-t', 'cgroup', '-o', 'net_cls', 'net_cls', root])
  } catch (error) {
    throw new PrivilegeError(
      `the net_cls hierarchy is not mounted and could not be mounted at ${root} (mount it into the container, or run the agent as root)`,
      { cause: error },
    )
  }
  return root
}

/** ensureNetClsGroup makes sure our group exists in the hierarchy at `root` with `classid`; returns its directory. */
export const ensureNetClsGroup = async (root: string, classid: number): Promise<string> => {
  if (!(await isCgroupFs(root))) throw new Error(`${root} is not (or no longer) a cgroup filesystem: was the net_cls hierarchy unmounted?`)
  const group = `${root}/${groupName(classid)}`
  const made = await mkdir(group).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return false
      throw error
    },
  )
  try {
    await writeKernelFile(`${group}/net_cls.classid`, String(classid))
  } catch (error) {
    // No classid file in a directory made a moment ago: the hierarchy went and this is a plain directory (or the
    // group was removed again). Take back what was made; the caller sees ENOENT.
    if (made) await rmdir(group).catch(() => undefined)
    throw error
  }
  return group
}

/** hasNetClsGroup says whether our group for `classid` exists in the hierarchy at `root`. */
export const hasNetClsGroup = (root: string, classid: number): Promise<boolean> =>
  stat(`${root}/${groupName(classid)}`).then(
    () => true,
    () => false,
  )

/** removeNetClsGroup removes our group for `classid` if it is empty; one in use (EBUSY) or gone stays as it is. */
export const removeNetClsGroup = (root: string, classid: number): Promise<void> => rmdir(`${root}/${groupName(classid)}`).catch(() => undefined)

/** joinGroup moves a whole process (every thread) into the group. */
export const joinGroup = (group: string, pid: number): Promise<void> => writeKernelFile(`${group}/cgroup.procs`, String(pid))

// A group being removed is gone within milliseconds, but whoever removes it (a loop of an admin's, another node
// agent's cleanup) may do it again at once, between our mkdir and our join, and on a loaded node more than 20
// times in a row: so it is made again until this long has passed, each try right after the last.
const REMADE_MS = 1000

/**
 * enterNetClsGroup makes our group for `classid` (if need be) and moves `pid` into it; returns the group's
 * directory. An empty group may be removed by someone else at any moment: gone (ENOENT), or still being torn down
 * (ENODEV: its files refuse writes until it is gone), it is made again.
 */
export const enterNetClsGroup = async (root: string, classid: number, pid: number): Promise<string> => {
  const deadline = Date.now() + REMADE_MS
  for (;;) {
    try {
      const group = await ensureNetClsGroup(root, classid)
      await joinGroup(group, pid)
      return group
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if ((code !== 'ENOENT' && code !== 'ENODEV') || Date.now() >= deadline) throw error
      await new Promise(resolve => setTimeout(resolve, 1))
    }
  }
}

/** netClsPath is a process's path in the net_cls hierarchy, read from /proc (no cgroupfs needed). */
export const netClsPath = async (pid: number | 'self'): Promise<string | undefined> =>
  /^\d+:(?:[^:]*,)?net_cls(?:,[^:]*)?:(.*)$/m.exec(await readFile(`/proc/${pid}/cgroup`, 'utf8'))?.[1]

/** classidOf returns the net_cls classid a process is classified with, or undefined if it has none. */
export const classidOf = async (pid: number | 'self', root?: string): Promise<number | undefined> => {
  const path = await netClsPath(pid)
  root ??= await netClsMount()
  if (path === undefined || root === undefined) return undefined
  const text = await readFile(`${root}${path === '/' ? '' : path}/net_cls.classid`, 'utf8').catch(() => '0')
  const classid = Number(text.trim())
  return classid === 0 ? undefined : classid
}

/**
 * isInGroupFor says whether a process is classified with `classid`: by the group's classid file where the
 * hierarchy is mounted here, else by the group's name (a process without cgroupfs, served by the classifier).
 */
export const isInGroupFor = async (pid: number | 'self', classid: number, preferred?: string): Promise<boolean> => {
  const root = await netClsMount(preferred)
  if (root) {
    const found = await classidOf(pid, root)
    // Unreadable because the mount went since it was listed: the kernel's word on the path is still good.
    if (found !== undefined || (await isCgroupFs(root))) return found === classid
  }
  return (await netClsPath(pid))?.endsWith(`/${groupName(classid)}`) ?? false
}
