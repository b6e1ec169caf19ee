// Network namespaces by file descriptor, for the node agent: a pod's netns named by a path is opened once and held
// for the whole request, so every step acts on that one namespace even if the path is replaced meanwhile; and the
// agent's main thread enters it only for synchronous work (a spawn, a /proc read, a bind), then comes straight back.
// setns(2) moves one thread, and JavaScript runs on one: nothing else of the agent runs while it is away.

import { closeSync, constants, fstatSync, openSync, statSync, type Stats } from 'node:fs'
import { getSystemErrorMap } from 'node:util'
import { EnvironmentError } from '../errors.js'
import { loadLibc } from './libc.js'

const CLONE_NEWNET = 0x40000000
// <linux/nsfs.h>: _IO(0xb7, 1) and _IO(0xb7, 3).
const NS_GET_USERNS = 0xb701
const NS_GET_NSTYPE = 0xb703

/** A namespace's identity: the device and inode of its nsfs file, as `stat -L` shows them. */
export type NamespaceId = `${number}:${number}`

/** errno as Node names and says it: "EPERM (operation not permitted)". */
export const describeErrno = (errno: number): string => {
  const [name, message] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, 'unknown']
  return `${name} (${message})`
}

const idOf = (stats: Stats): NamespaceId => `${stats.dev}:${stats.ino}`

export interface OpenNamespace {
  readonly fd: number
  readonly id: NamespaceId
}

/** What a path names: a network namespace (now open), nothing, something else, or something this process may not open. */
export type NetnsLookup =
  | { readonly kind: 'netns'; readonly netns: OpenNamespace }
  | { readonly kind: 'gone' }
  | { readonly kind: 'not-netns'; readonly what: string }
  /** This process may not open it (e.g. EACCES): it cannot have changed it, and will not. */
  | { readonly kind: 'closed'; readonly why: string }

const describeFile = (stats: Stats): string =>
  stats.isDirectory()
    ? 'a directory'
    : stats.isFIFO()
      ? 'a FIFO'
      : stats.isSocket()
        ? 'a socket'
        : stats.isCharacterDevice() || stats.isBlockDevice()
          ? 'a device'
          : 'a regular file'

/**
 * openNetns opens what `path` names and says whether it is a network namespace; close the fd when done.
 * O_NONBLOCK: a FIFO planted at the path must not block the agent.
 */
export const openNetns = (path: string): NetnsLookup => {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'gone' }
    // e.g. EACCES for /proc/1/ns/net where PID 1 is not ours to look into: not evidence of anything either way.
    return { kind: 'closed', why: code ?? String(error) }
  }
  const stats = fstatSync(fd)
  // nsfs files are regular files to stat; only the kernel's ioctl tells them from a planted one.
  const type = stats.isFile() ? loadLibc().ioctl(fd, NS_GET_NSTYPE) : -1
  if (type === CLONE_NEWNET) return { kind: 'netns', netns: { fd, id: idOf(stats) } }
  closeSync(fd)
  return { kind: 'not-netns', what: type > 0 ? 'a namespace of another kind' : describeFile(stats) }
}

/** The identity of the namespace a /proc path shows (e.g. /proc/1/ns/net), or undefined if it cannot be read. */
export const namespaceIdOf = (path: string): NamespaceId | undefined => {
  try {
    return idOf(statSync(path))
  } catch {
    return undefined
  }
}

/**
 * The user namespace that owns the netns, opened, when it is not this process's own (a pod with hostUsers:
 * false); undefined when it is ours. Throws EnvironmentError when the kernel will not say.
 */
export const foreignOwner = (netns: OpenNamespace): OpenNamespace | undefined => {
  const fd = loadLibc().ioctl(netns.fd, NS_GET_USERNS)
  if (fd < 0)
    throw new EnvironmentError(`cannot tell which user namespace owns the network namespace (NS_GET_USERNS: ${describeErrno(loadLibc().errno())})`)
  const id = idOf(fstatSync(fd))
  if (id === namespaceIdOf('/proc/self/ns/user')) {
    closeSync(fd)
    return undefined
  }
  return { fd, id }
}

/** Whether this process's user namespace owns the netns its thread is in. Throws EnvironmentError if the kernel will not say. */
export const ownsOwnNetns = (): boolean => {
  const fd = openSync('/proc/thread-self/ns/net', constants.O_RDONLY)
  try {
    const owner = foreignOwner({ fd, id: idOf(fstatSync(fd)) })
    if (owner) closeSync(owner.fd)
    return owner === undefined
  } finally {
    closeSync(fd)
  }
}

export interface NetnsSwitch {
  /** Runs `work` with this thread in the netns `fd`, and returns to the agent's own before anything else runs. */
  enter<T>(fd: number, work: () => T): T
  /** Whether this process may enter network namespaces (setns needs CAP_SYS_ADMIN); the reason if not. */
  check(): string | undefined
}

/** createNetnsSwitch remembers this thread's own netns (call it before entering any other). */
export const createNetnsSwitch = (): NetnsSwitch => {
  const libc = loadLibc()
  const home = openSync('/proc/thread-self/ns/net', constants.O_RDONLY)
  const setns = (fd: number): number => (libc.setns(fd, CLONE_NEWNET) === 0 ? 0 : libc.errno())
  return {
    enter: (fd, work) => {
      const errno = setns(fd)
      if (errno !== 0)
        throw new EnvironmentError(`cannot enter the pod's network namespace (setns: ${describeErrno(errno)}; the node agent needs CAP_SYS_ADMIN)`)
      try {
        return work()
      } finally {
        // Carrying on in a pod's netns would put every later request's work there: stop instead.
        if (setns(home) !== 0) {
          process.stderr.write(`sidecar-redirect node agent: cannot return to its own network namespace (${describeErrno(libc.errno())}); aborting\n`)
          process.abort()
        }
      }
    },
    check: () => {
      const errno = setns(home)
      return errno === 0 ? undefined : `setns into its own network namespace: ${describeErrno(errno)}`
    },
  }
}
