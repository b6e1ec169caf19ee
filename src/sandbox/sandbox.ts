// Throwaway network namespaces for the demo and the tests: a "pod" and a "remote" host on a veth, using test
// addresses (198.18.0.0/15, 2001:db8::/32) so nothing can leave the machine. Names are unique per process, and
// destroy() deletes everything, including the veth (it goes with its namespace).

import { randomBytes } from 'node:crypto'
import { chmodSync, copyFileSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { Exec, ExecOptions, ExecResult } from '../exec/exec.js'
import { runForStatus, startProcess, type Started, type Status } from '../exec/processes.js'
import { EnvironmentError } from '../errors.js'

export type Where = 'pod' | 'remote'

export interface SandboxAddresses {
  readonly pod: string
  readonly remote: string
  readonly pod6?: string
  readonly remote6?: string
}

export interface Programs {
  /** The bundled CLI and the traffic peer, as files node can run. */
  readonly cli: string
  readonly peer: string
}

/** What the listener that took a connection said about it (see peer.ts). */
export interface Answer {
  readonly label: string
  readonly local: string
  readonly from: string
  readonly originalDst: { readonly address: string; readonly port: number } | null
}

export interface Reply {
  readonly ok: boolean
  readonly reply?: Answer
  readonly error?: string
}

export interface ConnectOptions {
  readonly uid?: number
  /** Primary GID for the connecting process; defaults to the UID. */
  readonly gid?: number
  readonly from?: string
  /** Bind the socket to this interface (SO_BINDTODEVICE). */
  readonly device?: string
}

export interface SandboxOptions {
  /**
   * Make the pod as runc makes a pod with hostUsers: false: a user namespace with this uid_map and gid_map written
   * first (e.g. "0 327680 65536"), then the netns inside it. Every command in the pod then runs as the pod's root
   * (UIDs given to connect are the pod's).
   */
  readonly usernsMap?: string
}

export interface Sandbox {
  readonly podNs: string
  /** The pod's user namespace (/proc/PID/ns/user of a process kept in it), when it has one of its own. */
  readonly podUserns?: string
  readonly remoteNs: string
  /** Runs a command inside a namespace and returns its output, or throws on failure. */
  exec(where: Where, file: string, args: readonly string[], input?: string, options?: ExecOptions): Promise<ExecResult>
  /** Runs a command inside a namespace and returns its exit code and output, whatever happened. */
  tryExec(where: Where, file: string, args: readonly string[], env?: Record<string, string>): Promise<Status>
  serve(where: Where, specs: readonly string[]): Promise<Started>
  /** Starts a long-lived process in a namespace; destroy() stops it. */
  start(where: Where, file: string, args: readonly string[], env?: Record<string, string>): Started
  connect(where: Where, host: string, port: number, options?: ConnectOptions): Promise<Reply>
  runInit(env: Record<string, string>, args?: readonly string[]): Promise<Status>
  destroy(): Promise<void>
}

// Test runners hook NODE_OPTIONS into every child they see spawned (tap's coverage does), and such a hook fails in
// a child that changed UID; `env -u` removes it after the spawn, where no hook can put it back. Children start in
// `/`, as a container's would, not in a working directory a dropped UID may not enter.
const inNamespace = (ns: string, file: string, args: readonly string[], userns?: string): [string, string[]] => [
  'nsenter',
  [...(userns ? [`--user=${userns}`] : []), `--net=/run/netns/${ns}`, '--wd=/', 'env', '-u', 'NODE_OPTIONS', file, ...args],
]

/** Waits until `pid` is in a namespace of `kind` other than ours (it has unshared). */
const unshared = async (pid: number, kind: 'user' | 'net'): Promise<void> => {
  const ours = readlinkSync(`/proc/self/ns/${kind}`)
  for (let i = 0; i < 200; i++) {
    if (readlinkSync(`/proc/${pid}/ns/${kind}`) !== ours) return
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  throw new Error(`process ${pid} never left our ${kind} namespace`)
}

/**
 * A netns named `name` inside a new user namespace whose maps are written first; returns the process that keeps
 * the user namespace open (the netns keeps it alive too, but a path to it is needed to enter it).
 */
const netnsInUserns = async (io: SandboxIo, name: string, map: string): Promise<Started> => {
  const holder = startProcess('unshare', ['--user', '--', 'sleep', 'infinity'])
  await unshared(holder.pid, 'user')
  writeFileSync(`/proc/${holder.pid}/uid_map`, `${map}\n`)
  writeFileSync(`/proc/${holder.pid}/gid_map`, `${map}\n`)
  // As the pod's root (nsenter --user takes UID 0 there), so the netns is owned by the pod's user namespace.
  const creator = startProcess('nsenter', [`--user=/proc/${holder.pid}/ns/user`, '--', 'unshare', '--net', '--', 'sleep', 'infinity'])
  try {
    await unshared(creator.pid, 'net')
    await io.exec('ip', ['netns', 'attach', name, String(creator.pid)])
  } finally {
    await creator.stop()
  }
  return holder
}

export interface SandboxIo {
  readonly exec: Exec
}

export const createSandbox = async (
  io: SandboxIo,
  addresses: SandboxAddresses,
  programs?: Programs,
  options: SandboxOptions = {},
): Promise<Sandbox> => {
  const id = randomBytes(3).toString('hex')
  const podNs = `sr-${id}-pod`
  const remoteNs = `sr-${id}-remote`
  const ns = (where: Where): string => (where === 'pod' ? podNs : remoteNs)
  const started: Started[] = []
  let podUserns: string | undefined
  const enter = (where: Where, file: string, args: readonly string[]): [string, string[]] =>
    inNamespace(ns(where), file, args, where === 'pod' ? podUserns : undefined)
  const files: Programs = programs ?? {
    cli: new URL('./cli.mjs', import.meta.url).pathname,
    peer: new URL('./peer.mjs', import.meta.url).pathname,
  }
  // Connections made as another UID run a copy of the (self-contained) peer that every user can read: the
  // checkout itself may be private, as a clone in /root is.
  const shared = mkdtempSync(`${tmpdir()}/sr-peer-`)
  chmodSync(shared, 0o755)
  copyFileSync(files.peer, `${shared}/peer.mjs`)
  chmodSync(`${shared}/peer.mjs`, 0o644)
  const exec: Sandbox['exec'] = (where, file, args, input, options) => io.exec(...enter(where, file, args), input, options)
  const tryExec: Sandbox['tryExec'] = (where, file, args, env) => runForStatus(...enter(where, file, args), { ...process.env, ...env })
  let holder: Started | undefined
  const destroy = async (): Promise<void> => {
    await Promise.all(started.map(p => p.stop()))
    for (const name of [podNs, remoteNs]) await io.exec('ip', ['netns', 'delete', name]).catch(() => undefined)
    await holder?.stop()
    rmSync(shared, { recursive: true, force: true })
  }
  try {
    if (options.usernsMap) {
      holder = await netnsInUserns(io, podNs, options.usernsMap)
      podUserns = `/proc/${holder.pid}/ns/user`
    } else await io.exec('ip', ['netns', 'add', podNs])
    await io.exec('ip', ['netns', 'add', remoteNs])
    await io.exec('ip', ['link', 'add', `sr${id}p`, 'netns', podNs, 'type', 'veth', 'peer', 'name', `sr${id}r`, 'netns', remoteNs])
    for (const [where, link, v4, v6] of [
      ['pod', `sr${id}p`, addresses.pod, addresses.pod6],
      ['remote', `sr${id}r`, addresses.remote, addresses.remote6],
    ] as const) {
      await exec(where, 'ip', ['link', 'set', 'lo', 'up'])
      await exec(where, 'ip', ['addr', 'add', `${v4}/24`, 'dev', link])
      // nodad: the address is usable at once instead of after duplicate address detection.
      if (v6) await exec(where, 'ip', ['addr', 'add', `${v6}/64`, 'dev', link, 'nodad'])
      await exec(where, 'ip', ['link', 'set', link, 'up'])
    }
  } catch (error) {
    await destroy()
    throw new EnvironmentError(`could not build the sandbox namespaces (root and iproute2 are needed): ${String(error)}`, { cause: error })
  }
  return {
    podNs,
    ...(podUserns && { podUserns }),
    remoteNs,
    exec,
    tryExec,
    serve: async (where, specs) => {
      const [command, args] = enter(where, process.execPath, [files.peer, 'serve', ...specs])
      const peer = startProcess(command, args)
      started.push(peer)
      // A bound for a hang, not a measure: a Node start on a loaded machine takes seconds.
      await peer.waitForLine(line => line.includes('"ready"'), 30_000)
      return peer
    },
    start: (where, file, args, env) => {
      const child = startProcess(...enter(where, file, args), { ...process.env, ...env })
      started.push(child)
      return child
    },
    connect: async (where, host, port, options = {}) => {
      const drop = options.uid === undefined ? [] : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.gid ?? options.uid}`, '--clear-groups']
      const from = options.from === undefined ? [] : ['--from', options.from]
      const device = options.device === undefined ? [] : ['--device', options.device]
      const argv = [
        ...drop,
        process.execPath,
        options.uid === undefined ? files.peer : `${shared}/peer.mjs`,
        'connect',
        host,
        String(port),
        ...from,
        ...device,
      ]
      const result = await tryExec(where, argv[0] ?? '', argv.slice(1))
      const line = result.output.split('\n').find(l => l.startsWith('{'))
      return line ? (JSON.parse(line) as Reply) : { ok: false, error: result.output }
    },
    runInit: (env, args = ['init']) => tryExec('pod', process.execPath, [files.cli, ...args], env),
    destroy,
  }
}
