// A private containerd playing a Kubernetes node: Debian's containerd 1.6 with its CRI plugin and runc, its root,
// state, sockets, config, CNI dirs and logs in one temp dir, started inside a network namespace that plays the node
// (nsenter --net only, as the notes say, so nothing of /sys is remounted). Two things containerd 1.6 writes outside
// any configurable path stay private too: the shims' sockets (always under /run/containerd/s) and libcni's cache
// (/var/lib/cni). containerd runs in a mount namespace of its own where /run is an empty tmpfs and /var/lib an
// overlay whose writes land in the temp dir, so /run/containerd and /var/lib/cni on the machine stay untouched. The
// pods' netns mounts live in that mount namespace, which is why the CNI node agent runs there too.

import { createHash } from 'node:crypto'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import { buildEntry } from '../../../src/commands/cni-install.js'
import { runForStatus, startProcess, type Started, type Status } from '../../../src/exec/processes.js'
import { programs } from '../kernel.js'
import { connectCri, type Cri } from './client.js'

const ROOT = new URL('../../..', import.meta.url).pathname
const DEBIAN_PLUGINS = '/usr/lib/cni'
const PLUGIN = `${ROOT}dist/cni/sidecar-redirect`
/** The OCI archives scripts/cri/setup.sh saves: the image every example runs, and the sandbox (pause) image. */
export const ARCHIVES = { image: `${ROOT}.tools/cri/image.tar`, pause: `${ROOT}.tools/cri/pause.tar` } as const
export const IMAGE = 'localhost/sidecar-redirect:dev'
export const PAUSE_IMAGE = 'localhost/sr-cri-pause:1'

/** CNI mode: our plugin last in the node's conflist, with the entry the installer writes, and a node agent. */
export interface CniMode {
  /** The pods' ISTIO_* settings (the entry's `settings`). */
  readonly settings: Readonly<Record<string, string>>
  readonly captureAll?: boolean
  /** The annotations pods may set (the entry's `allowedAnnotations`); none by default, as the installer's. */
  readonly allowedAnnotations?: readonly string[]
  readonly excludeNamespaces?: readonly string[]
}

export interface NodeOptions {
  readonly cni?: CniMode
  /** More OCI archives to import besides ARCHIVES (e.g. a proxy image that is not ours). */
  readonly archives?: readonly string[]
}

/** A running private containerd and the namespace playing its node. */
export interface Node {
  /** sr-cri-<pid>-<n>: the node netns's name, and the cgroup parent of its pods. */
  readonly name: string
  /** The node netns's path, for nsenter --net. */
  readonly netns: string
  readonly dir: string
  /** containerd's CRI socket. */
  readonly socket: string
  readonly cri: Cri
  /** The pods' subnets (host-local) and the bridge's addresses in them: the node as pods see it. */
  readonly subnets: { readonly ipv4: string; readonly ipv6: string }
  readonly gateways: { readonly ipv4: string; readonly ipv6: string }
  /** The bridge the pods hang off, in the node netns. */
  readonly bridge: string
  /** Where pod log directories and volumes go. */
  readonly podsDir: string
  /** In CNI mode: the node agent, its output lines among it. */
  readonly agent: Started | undefined
  /** Runs a command in the node's network namespace (where a hostNetwork process or the kubelet would be). */
  run(file: string, args: readonly string[]): Promise<Status>
  /** Starts a long-lived process in the node's network namespace. */
  spawn(file: string, args: readonly string[]): Started
  /** Removes every pod, stops containerd, its shims and the agent, deletes the netns, cgroups and temp dir. Idempotent. */
  stop(): Promise<void>
  /**
   * What of this node shows outside its temp dir and netns, checkable while pods run: /etc/cni or /run/containerd
   * changed, libcni results of its network in /var/lib/cni, a link, address, route or rule of its network in the
   * machine's own namespace. Empty when the node keeps to itself.
   */
  outside(): Promise<string[]>
  /** After stop(): outside(), and any process, mount, cgroup, netns or file of the node still there. */
  traces(): Promise<string[]>
}

let nodes = 0

const must = async (file: string, args: readonly string[]): Promise<string> => {
  const result = await runForStatus(file, args)
  if (result.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} exited ${result.exitCode}: ${result.output}`)
  return result.output
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** A digest of every file's path, mode and bytes under `dir` (or "absent"): /etc/cni before and after. */
const treeDigest = (dir: string): string => {
  if (!existsSync(dir)) return 'absent'
  const hash = createHash('sha256')
  const walk = (path: string): void => {
    const stat = statSync(path, { throwIfNoEntry: false })
    if (!stat) return
    hash.update(`${path} ${stat.mode}\n`)
    if (stat.isDirectory()) for (const entry of readdirSync(path).sort()) walk(`${path}/${entry}`)
    else if (stat.isFile()) hash.update(readFileSync(path))
  }
  walk(dir)
  return hash.digest('hex')
}

// Every hierarchy the kernel mounts cgroups at here: the v1 controllers and the unified one.
const cgroupRoots = (): string[] =>
  readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map(line => line.split(' '))
    .filter(([, , type]) => type === 'cgroup' || type === 'cgroup2')
    .map(([, path]) => path!)

// Processes in containerd's mount namespace (containerd, its shims, the agent) or in the node's cgroups (the
// containers, which have mount namespaces of their own).
const processesOf = (node: string, mountNs: string | undefined): number[] =>
  readdirSync('/proc')
    .filter(entry => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter(pid => {
      try {
        return readlinkSync(`/proc/${pid}/ns/mnt`) === mountNs || readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`:/${node}/`)
      } catch {
        return false
      }
    })
    .map(Number)

// A cgroup directory and those under it, deepest first (a cgroup holds only its subgroups once it has no process).
const removeTree = (path: string): void => {
  if (!existsSync(path)) return
  for (const entry of readdirSync(path, { withFileTypes: true })) if (entry.isDirectory()) removeTree(`${path}/${entry.name}`)
  rmdirSync(path)
}

/**
 * startNode starts a private containerd in a new node netns, imports the two archives (and `options.archives`), and registers its stop as
 * a teardown of `t`. In CNI mode it also starts a node agent from this checkout and chains our plugin last.
 * Throws when containerd does not answer or an image does not import.
 */
export const startNode = async (t: Test, options: NodeOptions = {}): Promise<Node> => {
  const archives = [...Object.values(ARCHIVES), ...(options.archives ?? [])]
  for (const archive of archives) {
    if (!existsSync(archive)) throw new Error(`no ${archive}: run scripts/cri/setup.sh (npm run test:cri does)`)
  }
  const n = ++nodes
  const name = `sr-cri-${process.pid}-${n}`
  const etcCni = treeDigest('/etc/cni')
  const runContainerd = existsSync('/run/containerd')
  const dir = mkdtempSync(`${tmpdir()}/sr-cri-`)
  chmodSync(dir, 0o755)
  const netns = `/run/netns/${name}`
  const socket = `${dir}/containerd.sock`
  const podsDir = `${dir}/pods`
  // A bridge name has at most 15 bytes; it lives in the node netns, so it need only be unique there.
  const bridge = 'cri0'
  const subnets = { ipv4: `198.19.${40 + (n % 200)}.0/24`, ipv6: `2001:db8:${(0x40 + n).toString(16)}::/64` }
  const gateways = { ipv4: subnets.ipv4.replace(/0\/24$/, '1'), ipv6: subnets.ipv6.replace(/\/64$/, '1') }
  for (const sub of ['root', 'state', 'runc', 'cni/bin', 'cni/conf', 'cni/ipam', 'var-lib/upper', 'var-lib/work', 'pods', 'run']) {
    mkdirSync(`${dir}/${sub}`, { recursive: true })
  }
  for (const plugin of ['loopback', 'bridge', 'host-local']) symlinkSync(`${DEBIAN_PLUGINS}/${plugin}`, `${dir}/cni/bin/${plugin}`)

  let containerd: Started | undefined
  let agent: Started | undefined
  let mountNs: string | undefined
  let cri: Cri | undefined
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (cri) {
        // As the kubelet would for each pod: stop (CNI DEL with the netns), then remove (DEL again, without it).
        for (const sandbox of await cri.listPodSandbox().catch(() => [])) {
          await cri.stopPodSandbox(sandbox.id).catch(() => undefined)
          await cri.removePodSandbox(sandbox.id).catch(() => undefined)
        }
        cri.close()
      }
      await containerd?.stop()
      await agent?.stop()
      // The shims outlive containerd by design, and a container outlives a shim killed under it: whatever is left
      // in containerd's mount namespace or in the node's cgroups was started by this node and ends with it, by pid.
      for (let tries = 0; tries < 50; tries++) {
        const left = processesOf(name, mountNs)
        if (left.length === 0) break
        for (const pid of left) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {}
        }
        await sleep(100)
      }
      // Every step runs even if one before it failed; the first failure is reported at the end.
      const failures: unknown[] = []
      for (const root of cgroupRoots()) {
        try {
          removeTree(`${root}/${name}`)
        } catch (error) {
          failures.push(error)
        }
      }
      await runForStatus('ip', ['netns', 'del', name])
      rmSync(dir, { recursive: true, force: true })
      if (failures.length > 0) throw failures[0]
    })())
  t.teardown(stop)

  await must('ip', ['netns', 'add', name])
  await must('ip', ['-n', name, 'link', 'set', 'lo', 'up'])

  const conflist = {
    cniVersion: '1.0.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        ipMasq: false,
        ipam: { type: 'host-local', dataDir: `${dir}/cni/ipam`, ranges: [[{ subnet: subnets.ipv4 }], [{ subnet: subnets.ipv6 }]] },
      },
      ...(options.cni ? [cniEntry(options.cni, `${dir}/run/agent.sock`)] : []),
    ],
  }
  if (options.cni) {
    copyFileSync(PLUGIN, `${dir}/cni/bin/sidecar-redirect`)
    chmodSync(`${dir}/cni/bin/sidecar-redirect`, 0o755)
  }
  // go-cni puts the loopback network in front of this list itself, from loopback in the bin dir.
  writeFileSync(`${dir}/cni/conf/10-${name}.conflist`, JSON.stringify(conflist, null, 2))
  writeFileSync(`${dir}/config.toml`, configToml(dir))

  const script = [
    'mount -t tmpfs -o mode=0755 sr-cri-run /run',
    `mount -t overlay -o lowerdir=/var/lib,upperdir=${dir}/var-lib/upper,workdir=${dir}/var-lib/work sr-cri-var-lib /var/lib`,
    `exec containerd --config ${dir}/config.toml`,
  ].join(' && ')
  // nsenter, unshare and sh each exec the next: the pid is containerd's.
  containerd = startProcess('nsenter', [`--net=${netns}`, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], {
    PATH: process.env['PATH'],
  })
  cri = connectCri(socket)
  for (const started = Date.now(); ; await sleep(100)) {
    if (
      await cri.version().then(
        () => true,
        () => false,
      )
    )
      break
    if (Date.now() - started > 20_000)
      throw new Error(`containerd did not answer on ${socket} within 20 s: ${containerd.lines.slice(-20).join('\n')}`)
  }
  mountNs = readlinkSync(`/proc/${containerd.pid}/ns/mnt`)
  for (const archive of archives) await must('ctr', ['-a', socket, '-n', 'k8s.io', 'images', 'import', archive])

  if (options.cni) {
    const { cli } = programs()
    agent = startProcess('nsenter', [`--mount=/proc/${containerd.pid}/ns/mnt`, `--net=${netns}`, process.execPath, cli, 'node-agent'], {
      PATH: process.env['PATH'],
      ISTIO_NODE_AGENT_SOCKET: `${dir}/run/agent.sock`,
    })
    await agent.waitForLine(line => line.includes('listening'), 15_000)
  }

  const outside = async (): Promise<string[]> => {
    const found: string[] = []
    if (treeDigest('/etc/cni') !== etcCni) found.push('/etc/cni changed')
    if (existsSync('/run/containerd') !== runContainerd) found.push(`/run/containerd ${runContainerd ? 'vanished' : 'appeared'}`)
    if (existsSync('/var/lib/cni/results'))
      for (const entry of readdirSync('/var/lib/cni/results')) if (entry.includes(name)) found.push(`/var/lib/cni/results/${entry}`)
    // The machine's own namespace: no link, address, route, rule or netfilter line of this node's network.
    const needles = [subnets.ipv4.replace(/0\/24$/, ''), subnets.ipv6.replace(/::\/64$/, ':'), name]
    for (const [file, args] of [
      ['ip', ['-o', 'link']],
      ['ip', ['-o', 'addr']],
      ['ip', ['-4', 'route', 'show', 'table', 'all']],
      ['ip', ['-6', 'route', 'show', 'table', 'all']],
      ['ip', ['-4', 'rule']],
      ['ip', ['-6', 'rule']],
      ['nft', ['list', 'ruleset']],
      ['iptables-legacy-save', []],
      ['ip6tables-legacy-save', []],
    ] as const) {
      for (const line of (await runForStatus(file, args)).output.split('\n')) {
        if (needles.some(needle => line.includes(needle))) found.push(`${file} ${args.join(' ')}: ${line}`)
      }
    }
    return found
  }
  const inNode = (file: string, args: readonly string[]): [string, string[]] => ['nsenter', [`--net=${netns}`, file, ...args]]
  return {
    name,
    netns,
    dir,
    socket,
    cri,
    subnets,
    gateways,
    bridge,
    podsDir,
    agent,
    run: (file, args) => runForStatus(...inNode(file, args)),
    spawn: (file, args) => startProcess(...inNode(file, args)),
    stop,
    outside,
    traces: async () => {
      const found = await outside()
      if (existsSync(dir)) found.push(`${dir} is still there`)
      if (existsSync(netns)) found.push(`${netns} is still there`)
      for (const root of cgroupRoots()) if (existsSync(`${root}/${name}`)) found.push(`cgroup ${root}/${name}`)
      for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (line.includes(dir)) found.push(`mount: ${line}`)
      for (const pid of processesOf(name, undefined)) found.push(`process ${pid} in the node's cgroups`)
      for (const pid of readdirSync('/proc').filter(entry => /^\d+$/.test(entry))) {
        const cmdline = (() => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
          } catch {
            return ''
          }
        })()
        if (cmdline.includes(dir)) found.push(`process ${pid}: ${cmdline.replaceAll('\0', ' ')}`)
      }
      return found
    },
  }
}

/** Our plugin's entry, as `cni-install` chains it into a node's primary conflist. Pure. */
const cniEntry = (mode: CniMode, agentSocket: string): Record<string, unknown> =>
  buildEntry({
    confDir: '',
    binDir: '',
    plugin: undefined,
    agentSocket,
    podSettings: mode.settings,
    captureAll: mode.captureAll ?? false,
    allowedAnnotations: mode.allowedAnnotations ?? [],
    excludeNamespaces: mode.excludeNamespaces ?? ['kube-system'],
    checkSeconds: 10,
  })

/**
 * containerd's config: everything under `dir`. restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and runc
 * cannot lower the sandbox's oom_score_adj to -998 without it. No AppArmor on this machine; cgroupfs, no systemd.
 */
const configToml = (dir: string): string => `version = 2
root = "${dir}/root"
state = "${dir}/state"

[grpc]
  address = "${dir}/containerd.sock"

[ttrpc]
  address = "${dir}/containerd-ttrpc.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${dir}/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni/bin"
    conf_dir = "${dir}/cni/conf"
    max_conf_num = 1
`
