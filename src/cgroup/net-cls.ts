// The net_cls cgroup (v1) that the cgroup method keys on: every socket a process creates carries its cgroup's
// classid, and `-m cgroup --cgroup ID` matches it. Membership is inherited at fork, so a process that joins the
// group before starting the proxy has every proxy process (restarts too) classified from its first instruction.

import { mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises'
import type { Exec } from '../exec/exec.js'
import { PrivilegeError } from '../errors.js'

/** findNetClsMount returns where the net_cls hierarchy is mounted, from /proc/self/mountinfo text. Pure. */
export const findNetClsMount = (mountinfo: string): string | undefined => {
  for (const line of mountinfo.split('\n')) {
    // mount-id parent major:minor root mount-point options [optional...] - fstype source super-options
    const [left = '', right = ''] = line.split(' - ')
    const [fstype, , superOptions = ''] = right.split(' ')
    if (fstype === 'cgroup' && superOptions.split(',').includes('net_cls')) return left.split(' ')[4]?.replace(/\\040/g, ' ')
  }
  return undefined
}

export const groupName = (classid: number): string => `sidecar-redirect-${classid.toString(16)}`

/** netClsMount is where this process sees the net_cls hierarchy mounted, if anywhere. */
export const netClsMount = async (): Promise<string | undefined> => findNetClsMount(await readFile('/proc/self/mountinfo', 'utf8'))

/** mountNetCls returns where the hierarchy is mounted, mounting it at `root` if it is mounted nowhere. */
export const mountNetCls = async (root: string, exec: Exec): Promise<string> => {
  const mounted = await netClsMount()
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
  const group = `${root}/${groupName(classid)}`
  await mkdir(group, { recursive: true })
  await writeFile(`${group}/net_cls.classid`, String(classid))
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
export const joinGroup = (group: string, pid: number): Promise<void> => writeFile(`${group}/cgroup.procs`, String(pid))

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
export const isInGroupFor = async (pid: number | 'self', classid: number): Promise<boolean> => {
  const root = await netClsMount()
  if (root) return (await classidOf(pid, root)) === classid
  return (await netClsPath(pid))?.endsWith(`/${groupName(classid)}`) ?? false
}
