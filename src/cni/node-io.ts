// The node agent's engine: init, verify and clean for a pod run in the agent's own process, through the CLI's own
// path from environment to exit code (commands/rules.ts, handed in as `run`), with an Io that sends every effect
// into the pod's namespaces (pod-io.ts). No Node process starts per pod. The one exception is the live probe
// (ISTIO_VERIFY=live, not the CNI default): it takes the app's and the proxy's UIDs with seteuid, which is
// process-wide, so it gets a process of its own in the pod, as the CLI it is.

import { randomBytes } from 'node:crypto'
import { closeSync, constants, fchownSync, openSync, statSync, unlinkSync } from 'node:fs'
import { onPath } from '../exec/on-path.js'
import { runForStatus } from '../exec/processes.js'
import type { Io } from '../io.js'
import type { Output } from '../log.js'
import { createNetnsSwitch, foreignOwner, namespaceIdOf, openNetns, type NetnsSwitch, type OpenNamespace } from '../net/namespace.js'
import { hasOwnedComment, isOwnedChain, NFT_TABLE } from '../plan/owned.js'
import { parseSettings } from '../settings/parse.js'
import { firstLine } from '../text.js'
import type { AgentIo, CliCommand, CliOutcome, NetnsState } from './handle.js'
import { createPodIo, nsenterArgs, type PodTarget } from './pod-io.js'

const SAVES = ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']
// What ADD runs: the rule tools init needs, and nsenter for user-namespaced pods and the live probe.
const TOOLS = ['nsenter', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'ip6tables-save']

const isOurs = (line: string): boolean =>
  isOwnedChain(/^:(\S+)/.exec(line)?.[1] ?? '') || hasOwnedComment(line) || line.startsWith(`table inet ${NFT_TABLE}`)

/** The CLI's path from env to exit code, for one rule command (commands/rules.ts: runRuleCommand). */
export type RunCommand = (command: CliCommand, env: Readonly<Record<string, string>>, flags: Record<string, never>, io: Io) => Promise<number>

export interface EngineOptions {
  readonly run: RunCommand
  /** The bundled CLI this agent was started from: the live probe runs it in the pod. */
  readonly cli: string
  /** A root-owned directory of the agent's (traversable by others): user-namespaced pods' xtables lock files go here. */
  readonly stateDir: string
  /** Each tool run of its own (CHECK's look for our rules) is bounded by this, as the commands' are by their settings. */
  readonly timeoutMs: number
  /** The live probe's process is killed after this long. */
  readonly childTimeoutMs: number
}

export type Engine = Pick<AgentIo, 'runCli' | 'inspectNetns' | 'ownedRules' | 'missingTools'>

const wantsLive = (env: Readonly<Record<string, string>>): boolean => {
  try {
    return parseSettings(env, {}).verify === 'live'
  } catch {
    // Refused settings are reported by the command itself, the same way in either place.
    return false
  }
}

/**
 * A lock file for iptables-legacy that the pod's root can open, owned by the pod's root as the node sees it (the
 * owner of the netns's /proc/net files). Removed when the request ends; the netns's own rule lock (held by init
 * and clean) already keeps this agent's requests for one pod apart.
 */
const makeXtablesLock = (netns: OpenNamespace, sw: NetnsSwitch, stateDir: string): string => {
  const owner = sw.enter(netns.fd, () => statSync('/proc/thread-self/net/dev'))
  const path = `${stateDir}/xtables-${randomBytes(6).toString('hex')}.lock`
  const fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600)
  try {
    fchownSync(fd, owner.uid, owner.gid)
  } finally {
    closeSync(fd)
  }
  return path
}

/** createEngine: the AgentIo's work in pods' netns, done in this process. */
export const createEngine = ({ run, cli, stateDir, timeoutMs, childTimeoutMs }: EngineOptions): Engine => {
  const sw = createNetnsSwitch()
  // Never a pod's: requests naming them are refused (PID 1's is the node's in the chart's DaemonSet, with hostPID
  // or not, as the agent shares the node's netns).
  const own = new Map<string, string>()
  for (const [path, whose] of [
    ['/proc/1/ns/net', "PID 1's"],
    ['/proc/self/ns/net', "the node agent's own"],
  ] as const) {
    const id = namespaceIdOf(path)
    if (id !== undefined) own.set(id, whose)
  }

  const withPod = async <T>(path: string, work: (target: PodTarget) => Promise<T>): Promise<T> => {
    const found = openNetns(path)
    // handle.ts looked first; a path that changed since is refused, never worked in.
    if (found.kind !== 'netns') throw new Error(`${path} no longer names a network namespace it may open (${JSON.stringify(found)})`)
    const opened: number[] = [found.netns.fd]
    try {
      if (own.has(found.netns.id)) throw new Error(`${path} is ${own.get(found.netns.id)} network namespace: refusing to change it`)
      const userns = foreignOwner(found.netns)
      if (userns) opened.push(userns.fd)
      const xtablesLock = userns ? makeXtablesLock(found.netns, sw, stateDir) : undefined
      try {
        return await work({ netns: found.netns, ...(userns && { userns }), ...(xtablesLock && { xtablesLock }) })
      } finally {
        if (xtablesLock) unlinkSync(xtablesLock)
      }
    } finally {
      for (const fd of opened) closeSync(fd)
    }
  }

  // The live probe's own process, in the pod's namespaces (as the pod's root in a user-namespaced pod, so the
  // UIDs it connects as are the pod's: the kernel compares owner matches in the netns owner's namespace).
  const runChild = async (target: PodTarget, command: CliCommand, env: Readonly<Record<string, string>>): Promise<CliOutcome> => {
    const [nsenter = 'nsenter', ...enter] = nsenterArgs(target)
    const lock = target.xtablesLock ? { XTABLES_LOCKFILE: target.xtablesLock } : {}
    const argv = [...enter, '--wd=/', '--', process.execPath, cli, command]
    const result = await runForStatus(nsenter, argv, { PATH: process.env['PATH'], ...env, ...lock }, { timeoutMs: childTimeoutMs })
    if (!result.timedOut) return { exitCode: result.exitCode, output: result.output }
    // Reported as the CLI reports an environment that cannot do the job (exit 3): the plugin's code is 103.
    const killed = `sidecar-redirect: ${command} in the pod (a process of its own, for the live probe) was still running after ${childTimeoutMs / 1000} s (ISTIO_NODE_AGENT_DEADLINE_SECONDS) and was killed [E_ENVIRONMENT]`
    return { exitCode: 3, output: `${result.output}\n${killed}\n` }
  }

  const runInProcess = async (target: PodTarget, command: CliCommand, env: Readonly<Record<string, string>>): Promise<CliOutcome> => {
    const parts: string[] = []
    const out: Output = { write: text => void parts.push(text), error: text => void parts.push(text) }
    const exitCode = await run(command, env, {}, createPodIo(target, sw, out))
    return { exitCode, output: parts.join('') }
  }

  return {
    // clean never probes, whatever ISTIO_VERIFY says (a DEL of a pod that was not captured has no settings at all).
    runCli: (path, command, env) => withPod(path, target => (command !== 'clean' && wantsLive(env) ? runChild : runInProcess)(target, command, env)),
    inspectNetns: async (path): Promise<NetnsState> => {
      const found = openNetns(path)
      if (found.kind !== 'netns') return found
      closeSync(found.netns.fd)
      const whose = own.get(found.netns.id)
      return whose ? { kind: 'own', whose } : { kind: 'netns', id: found.netns.id }
    },
    ownedRules: path =>
      withPod(path, async target => {
        const io = createPodIo(target, sw, { write: () => undefined, error: () => undefined })
        const texts = await Promise.all(
          [...SAVES.map(save => [save]), ['nft', 'list', 'ruleset']].map(([tool = '', ...args]) =>
            io.exec(tool, args, undefined, { timeoutMs }).then(
              r => r.stdout,
              () => '',
            ),
          ),
        )
        return texts.flatMap(text =>
          text
            .split('\n')
            .map(line => line.trim())
            .filter(isOurs),
        )
      }),
    missingTools: async () => {
      const found = await Promise.all(TOOLS.map(onPath))
      const missing = TOOLS.filter((_, i) => !found[i])
      if (missing.includes('nsenter')) return missing
      // On PATH is not enough: entering a netns takes CAP_SYS_ADMIN, and without it every ADD fails. Entering our own
      // netns and running nsenter itself proves it, at no cost to any pod; then the agent's own setns.
      const entered = await runForStatus('nsenter', ['--net=/proc/self/ns/net', 'nsenter', '--version'], { PATH: process.env['PATH'] })
      if (entered.exitCode !== 0)
        return [`nsenter (it cannot enter a network namespace: ${firstLine(entered.output)}; the agent needs CAP_SYS_ADMIN)`, ...missing]
      const refused = sw.check()
      return refused === undefined ? missing : [`setns (the agent cannot enter a network namespace: ${refused}; it needs CAP_SYS_ADMIN)`, ...missing]
    },
  }
}
