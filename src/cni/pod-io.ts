// The Io one node-agent request hands to init, verify or clean, which then run in the agent's own process exactly
// as the CLI runs them (src/main.ts), every effect landing in the pod's network namespace:
// - a tool is spawned while the agent's thread is in the pod's netns, so it starts there (no nsenter process:
//   bench/cni.mjs has the figures); in a user-namespaced pod it goes through nsenter --user --net instead, as a
//   multithreaded process cannot enter a user namespace, and the tool must run as the pod's root there: the
//   kernel takes an owner match only from the netns owner's user namespace, and reads its UIDs as the pod's.
// - /proc/net and /proc/sys/net are read, and the namespace's rule lock taken, from inside the pod's netns.

import { acquireNetnsLock, type InNamespace } from '../backend/lock.js'
import { realExec, type Exec } from '../exec/exec.js'
import { listOrAbsent, readTextOrAbsent, realFs, type Io } from '../io.js'
import type { Output } from '../log.js'
import type { NetnsSwitch, OpenNamespace } from '../net/namespace.js'

export interface PodTarget {
  readonly netns: OpenNamespace
  /** The user namespace that owns the netns, when it is not the agent's (a pod with hostUsers: false). */
  readonly userns?: OpenNamespace
  /** XTABLES_LOCKFILE for iptables-legacy in such a pod: its root cannot open the node's /run/xtables.lock. */
  readonly xtablesLock?: string
}

// /proc/net is the thread group leader's view; the thread that entered the netns is the one to ask.
const inThread = (path: string): string => path.replace(/^\/proc\/net\//, '/proc/thread-self/net/')

/**
 * The nsenter argv (before its `--`) that enters the pod's namespaces through the fds this process holds: the
 * same namespaces this request opened, whatever the paths name by now.
 */
export const nsenterArgs = (target: PodTarget): string[] => {
  const fd = (ns: OpenNamespace): string => `/proc/${process.pid}/fd/${ns.fd}`
  return ['nsenter', ...(target.userns ? [`--user=${fd(target.userns)}`] : []), `--net=${fd(target.netns)}`]
}

/** createPodIo gives the rule commands a pod's namespace to work in; `out` collects what they print. */
export const createPodIo = (target: PodTarget, netns: NetnsSwitch, out: Output): Io => {
  const inPod: InNamespace = work => netns.enter(target.netns.fd, work)
  const env = target.xtablesLock === undefined ? undefined : { XTABLES_LOCKFILE: target.xtablesLock }
  const exec: Exec = target.userns
    ? (file, args, input, options) => realExec(file, args, input, { ...options, launcher: [...nsenterArgs(target), '--'], ...(env && { env }) })
    : (file, args, input, options) => inPod(() => realExec(file, args, input, options))
  const started = performance.now()
  return {
    exec,
    fs: {
      readFile: async path => inPod(() => readTextOrAbsent(inThread(path))),
      readDir: async path => inPod(() => listOrAbsent(inThread(path))),
      // Whether the kernel has IPv6 at all is the same in every namespace.
      canOpenIpv6: realFs.canOpenIpv6,
      onPath: realFs.onPath,
      // The tools run in the user namespace that owns the netns: the agent's own, or the pod's, entered for them.
      ownsNetns: async () => true,
    },
    lock: () => acquireNetnsLock(10_000, inPod),
    // The report's timings start with the request.
    startedAt: 0,
    now: () => performance.now() - started,
    out,
  }
}
