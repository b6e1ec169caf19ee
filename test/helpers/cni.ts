// A real CNI runtime for the tests: libcni (the CNI project's own library, from Debian's source, built by
// scripts/cni/setup.sh) runs a conflist of Debian's loopback, bridge and host-local with ours last. A sandbox's
// "remote" namespace plays the node (the bridge lives there), its "pod" namespace is the pod's netns, and the node
// agent runs as it would on a node, outside both. Everything goes to a temp dir the teardown deletes.

import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { execa } from 'execa'
import type { Test } from 'tap'
import type { Sandbox } from '../../src/sandbox/sandbox.js'
import { runForStatus, startProcess, type Started, type Status } from '../../src/exec/processes.js'
import { programs } from './kernel.js'
import { untapped } from './processes.js'

const ROOT = new URL('../..', import.meta.url).pathname
export const HARNESS = `${ROOT}.tools/cni-harness/harness`
const PLUGIN = `${ROOT}dist/cni/sidecar-redirect`
const DEBIAN_PLUGINS = '/usr/lib/cni'

export const POD_ARGS = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=1'

export interface Direct {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
}

/** host-local's address ranges, one list per family. */
export type Ranges = readonly (readonly { subnet: string }[])[]

export interface RigOptions {
  /** Variables for the node agent besides its socket (ISTIO_NODE_AGENT_*, PATH). */
  readonly env?: Record<string, string>
  /** The agent's command line goes through this (e.g. nsenter into a throwaway netns, or joining a cgroup). */
  readonly launch?: (argv: readonly string[]) => readonly string[]
}

export interface Rig {
  readonly dir: string
  /** The CNI bin dir: Debian's plugins and ours. */
  readonly bin: string
  readonly socket: string
  /** Writes a conflist named sr-test-N with `ours` (our plugin's entry, type added) after loopback, bridge and host-local. */
  conflist(ours: Record<string, unknown>, ranges?: Ranges): string
  /** Runs libcni's add|check|del (of a conflist) or version (of a plugin type) in the node namespace, with a PATH that has neither node nor iptables. */
  runtime(
    box: Sandbox,
    command: 'add' | 'check' | 'del' | 'version',
    list: string,
    annotations?: Record<string, string>,
    options?: { netns?: string; args?: string; id?: string; capabilities?: Record<string, unknown> },
  ): Promise<Status>
  /**
   * Runs the plugin alone, as a runtime does, with a PATH that has neither node nor iptables; with `chroot`, in a
   * root (the rig's dir) that has no node, no iptables and no libc either, where the socket is /run/agent.sock.
   */
  plugin(command: string, config: Record<string, unknown>, options?: { env?: Record<string, string>; chroot?: boolean }): Promise<Direct>
  stopAgent(): Promise<void>
  /** Starts the agent again after stopAgent, with the same socket and state directory. */
  startAgent(): Promise<void>
  /** The running agent: its PID and what it printed. */
  readonly agent: () => Started
  /** What the node agent has logged so far. */
  agentLog(): string
}

/** startRig starts a node agent and a CNI bin dir holding Debian's plugins and ours. */
export const startRig = async (t: Test, options: RigOptions = {}): Promise<Rig> => {
  const dir = mkdtempSync(`${tmpdir()}/sr-cni-`)
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const bin = `${dir}/bin`
  mkdirSync(bin)
  for (const name of ['loopback', 'bridge', 'host-local']) symlinkSync(`${DEBIAN_PLUGINS}/${name}`, `${bin}/${name}`)
  copyFileSync(PLUGIN, `${bin}/sidecar-redirect`)
  chmodSync(`${bin}/sidecar-redirect`, 0o755)
  const socket = `${dir}/run/agent.sock`
  const launch = options.launch ?? (argv => argv)
  let agent: Started | undefined
  const startAgent = async (): Promise<void> => {
    // Untapped: the agent's own children run as a pod's users, who may not read the checkout the hook lives in.
    const [file = '', ...args] = launch(untapped(process.execPath, programs().cli, 'node-agent'))
    const started = startProcess(file, args, { PATH: process.env['PATH'], ISTIO_NODE_AGENT_SOCKET: socket, ...options.env })
    agent = started
    await started.waitForLine(line => line.includes('listening'), 60_000)
  }
  t.teardown(() => agent?.stop())
  await startAgent()
  let lists = 0
  let files = 0
  const bare = { PATH: '/nonexistent', CNI_PATH: bin, CNI_CACHE_DIR: `${dir}/cache` }
  return {
    dir,
    bin,
    socket,
    conflist: (ours, ranges = [[{ subnet: '198.19.7.0/24' }]]) => {
      lists += 1
      const path = `${dir}/list-${lists}.conflist`
      const bridge = { type: 'bridge', bridge: `srb${lists}${process.pid % 1000}`, isGateway: true, ipMasq: false }
      const ipam = { type: 'host-local', dataDir: `${dir}/ipam`, ranges }
      const plugins = [{ type: 'loopback' }, { ...bridge, ipam }, { type: 'sidecar-redirect', agentSocket: socket, ...ours }]
      writeFileSync(path, JSON.stringify({ cniVersion: '1.0.0', name: `sr-test-${lists}`, plugins }))
      return path
    },
    runtime: (box, command, list, annotations = {}, options = {}) => {
      // A large annotation goes by file: exec refuses one argument over 128 KiB (E2BIG).
      let json = JSON.stringify(annotations)
      if (json.length > 64 * 1024) {
        const file = `${dir}/annotations-${++files}.json`
        writeFileSync(file, json)
        json = `@${file}`
      }
      return runForStatus(
        '/usr/bin/nsenter',
        [
          `--net=/run/netns/${box.remoteNs}`,
          HARNESS,
          command,
          list,
          options.netns ?? `/run/netns/${box.podNs}`,
          options.id ?? `c-${box.podNs}`,
          options.args ?? POD_ARGS,
          json,
          ...(options.capabilities ? [JSON.stringify(options.capabilities)] : []),
        ],
        bare,
      )
    },
    plugin: async (command, config, options = {}) => {
      const env = { ...bare, CNI_COMMAND: command, ...options.env }
      const [file, args] = options.chroot ? ['/usr/sbin/chroot', [dir, '/bin/sidecar-redirect']] : [`${bin}/sidecar-redirect`, []]
      const result = await execa(file, args, { env, extendEnv: false, input: JSON.stringify(config), reject: false })
      return { exitCode: result.exitCode ?? 128, stdout: result.stdout, stderr: result.stderr }
    },
    stopAgent: async () => agent?.stop(),
    startAgent,
    agent: () => {
      if (!agent) throw new Error('the agent was not started')
      return agent
    },
    agentLog: () => agent?.lines.join('\n') ?? '',
  }
}

/** The JSON object the output starts a line with (a result or an error object). */
export const jsonLine = (output: string): Record<string, unknown> | undefined => {
  const line = output.split('\n').find(l => l.startsWith('{'))
  return line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>)
}
