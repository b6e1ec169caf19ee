// Runs one Pod on a node's containerd in the order the kubelet (1.29+) follows: the sandbox, each run-to-completion
// init container to its end, each native sidecar until its startup probe passes, then the app containers, each held
// by its postStart hook; and stops it as the kubelet does: preStop hooks, the app containers, then the sidecars
// last-started first, then the sandbox. manifest.ts says what each config holds; this file does the I/O and the
// waiting, and keeps an event log with times, so a test can check the order rather than trust it.

import { randomUUID } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { type ProcessStatus, readStatus } from '../../../src/privilege/status.js'
import { type ContainerInfo, CriError, isNotFound, type PodSandboxConfig } from './client.js'
import type { Node } from './containerd.js'
import {
  admitPod,
  ContainerConfigError,
  type ContainerSpec,
  containerConfig,
  type DnsConfig,
  type Hook,
  hookOf,
  hostsFile,
  type NodeFacts,
  type Role,
  sandboxConfig,
  type StartupProbe,
  startupProbeOf,
  volumePlans,
} from './manifest.js'

const NODE_PROBE = new URL('./node-probe.mjs', import.meta.url).pathname
// The kubelet never gives a container less than this between the stop signal and SIGKILL.
const MINIMUM_GRACE_SECONDS = 2

/**
 * Where a pod got to, in kubectl's words where it has them: Running once every app container has started (and
 * its postStart hook returned); otherwise the first step that failed, prefixed with Init: during the init phase
 * (which stops there; a failing app container does not keep the kubelet from starting the next one).
 * Init:StartupProbeFailed is a native sidecar whose startup probe reached its failure threshold (the kubelet
 * would restart it; the app never starts either way).
 */
export type PodStatus =
  | 'Running'
  | 'FailedCreatePodSandBox'
  | 'Init:Error'
  | 'Init:StartupProbeFailed'
  | `${'Init:' | ''}${'CreateContainerConfigError' | 'CreateContainerError' | 'StartError' | 'ErrImagePull' | 'PostStartHookError'}`

export type EventType =
  | 'SandboxReady'
  | 'Created'
  | 'Started'
  | 'PostStartDone'
  | 'ProbeFailed'
  | 'ProbePassed'
  | 'Exited'
  | 'PreStopDone'
  | 'Stopping'
  | 'Stopped'
  | 'SandboxStopped'
  | 'Failed'

/** One step of the pod's life, as it happened. */
export interface PodEvent {
  /** Milliseconds since the epoch. */
  readonly at: number
  readonly type: EventType
  readonly container?: string
  readonly message?: string
}

/** What the runtime was told to give the container's process (from containerd's copy of the OCI spec). */
export interface RuntimeView {
  readonly uid: number
  readonly gid: number
  readonly groups: readonly number[]
  readonly capabilities: Readonly<Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', readonly string[]>>
  readonly noNewPrivileges: boolean
  readonly readonlyRootfs: boolean
  readonly seccomp: boolean
  readonly maskedPaths: readonly string[]
  readonly oomScoreAdj: number | undefined
}

/** One container of the manifest, as it stands. Times are milliseconds since the epoch. */
export interface ContainerReport {
  readonly name: string
  readonly role: Role
  /** undefined: never created (an earlier step stopped the pod). */
  readonly id: string | undefined
  readonly state: 'not created' | 'created' | 'running' | 'exited' | 'unknown'
  readonly exitCode: number | undefined
  /** The runtime's reason (Completed, Error, OOMKilled) or the runner's (why it was never created). */
  readonly reason: string
  readonly pid: number | undefined
  /**
   * /proc/<pid>/status of the container's process right after it started (after its exec), read from the host;
   * undefined if it had already exited. Later changes (an agent dropping privileges) are not in it: statusOf().
   */
  readonly startStatus: ProcessStatus | undefined
  readonly runtime: RuntimeView | undefined
  readonly createdAt: number | undefined
  readonly startedAt: number | undefined
  readonly finishedAt: number | undefined
  /** When the runner let the next container start: its postStart hook returned, or its startup probe passed. */
  readonly readyAt: number | undefined
  /** When the runner asked the runtime to stop it (after its preStop hook and its turn). */
  readonly stopRequestedAt: number | undefined
}

export interface RunOptions {
  /** ConfigMap and Secret data the pod refers to, by name (there is no API server to hold them). */
  readonly configMaps?: Readonly<Record<string, Readonly<Record<string, string>>>>
  readonly secrets?: Readonly<Record<string, Readonly<Record<string, string>>>>
  /** The kubelet's --cluster-dns servers; without them ClusterFirst falls back to the node's resolv.conf. */
  readonly clusterDns?: readonly string[]
  /** The longest the runner waits for one step (an init container, a hook, a probe's run): 120 s by default. */
  readonly stepTimeoutSeconds?: number
  /** Called on each event as it happens, with the pod, e.g. to act in a sidecar while its probe is failing. */
  readonly onEvent?: (event: PodEvent, pod: Pod) => void | Promise<void>
}

/** A pod on the node: started (or stopped at the step that failed), until stop(). */
export interface Pod {
  readonly name: string
  readonly namespace: string
  readonly uid: string
  readonly status: PodStatus
  /** The container and the message of the step that failed, when status is not Running. */
  readonly failure: { readonly container: string; readonly message: string } | undefined
  readonly sandboxId: string | undefined
  /** The pod's addresses, IPv4 first. */
  readonly ips: readonly string[]
  /** The pod's network namespace, for nsenter --net (its pause process's). */
  readonly netns: string
  readonly events: readonly PodEvent[]
  /** Fields of the manifest that cannot change what runs here and were not carried out, with why. */
  readonly notes: readonly string[]
  /** Every container of the manifest, in manifest order (init containers first), as it stands now. */
  containers(): Promise<ContainerReport[]>
  container(name: string): Promise<ContainerReport>
  /** Runs a command in a running container (CRI ExecSync), as kubectl exec would. */
  exec(name: string, cmd: readonly string[], timeoutSeconds?: number): Promise<{ exitCode: number; stdout: string; stderr: string }>
  /** The container's log lines (stdout and stderr, as the runtime wrote them). */
  logs(name: string): string[]
  waitForLog(name: string, text: string, timeoutMs?: number): Promise<void>
  waitForExit(name: string, timeoutMs?: number): Promise<ContainerReport>
  /** The container's main process now, read from the host. */
  processOf(name: string): { pid: number; status: ProcessStatus; children: number[] }
  /**
   * Stops the pod as the kubelet deletes one: every preStop hook, then the app containers, then the sidecars in
   * reverse start order, each once those after it have exited; then the sandbox; then removes it all. Returns the
   * final reports. Idempotent.
   */
  stop(options?: { gracePeriodSeconds?: number }): Promise<ContainerReport[]>
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const nsToMs = (ns: string | number): number | undefined => (Number(ns) === 0 ? undefined : Number(BigInt(ns) / 1000n) / 1000)

/** The Pod objects of a YAML text (one document or many, as helm template prints them). Pure. */
export const podsOf = (yaml: string): Record<string, unknown>[] =>
  parseAllDocuments(yaml)
    .map(doc => doc.toJS() as Record<string, unknown> | null)
    .filter((doc): doc is Record<string, unknown> => doc?.['kind'] === 'Pod')

const parseResolvConf = (text: string): DnsConfig => {
  const lines = text.split('\n').map(line => line.trim().split(/\s+/))
  return {
    servers: lines.filter(([key]) => key === 'nameserver').map(([, value]) => value!),
    searches: lines.filter(([key]) => key === 'search').flatMap(([, ...rest]) => rest),
    options: lines.filter(([key]) => key === 'options').flatMap(([, ...rest]) => rest),
  }
}

const runtimeView = (info: ContainerInfo): RuntimeView | undefined => {
  const spec = info.runtimeSpec
  if (!spec?.process) return undefined
  const caps = spec.process.capabilities ?? {}
  return {
    uid: spec.process.user?.uid ?? 0,
    gid: spec.process.user?.gid ?? 0,
    groups: spec.process.user?.additionalGids ?? [],
    capabilities: {
      bounding: caps.bounding ?? [],
      effective: caps.effective ?? [],
      permitted: caps.permitted ?? [],
      inheritable: caps.inheritable ?? [],
      ambient: caps.ambient ?? [],
    },
    noNewPrivileges: spec.process.noNewPrivileges === true,
    readonlyRootfs: spec.root?.readonly === true,
    seccomp: spec.linux?.seccomp !== undefined && spec.linux.seccomp !== null,
    maskedPaths: spec.linux?.maskedPaths ?? [],
    oomScoreAdj: spec.process.oomScoreAdj,
  }
}

// Until its exec, the container's pid is runc's init ("runc init"), whose capabilities are not yet the
// container's; the first program after it (the image's entrypoint, or env or an interpreter on its way to it)
// runs with the container's credentials, which an exec keeps.
const readAfterExec = async (pid: number): Promise<ProcessStatus | undefined> => {
  for (let tries = 0; tries < 200; tries++) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      if (cmdline !== '' && cmdline !== 'runc\0init\0') return readStatus(pid)
    } catch {
      return undefined
    }
    await sleep(10)
  }
  return undefined
}

/**
 * runPod admits `manifest` (a Pod object or its YAML), runs it on `node` as the kubelet would and resolves once it
 * is Running or has stopped at a failing step (see PodStatus); the pod stays for inspection until stop() or the
 * node's teardown. Throws ManifestError for a manifest the API server or this runner refuses, and Error when a
 * step outlasts stepTimeoutSeconds.
 */
export const runPod = async (node: Node, manifest: string | object, options: RunOptions = {}): Promise<Pod> => {
  const object = typeof manifest === 'string' ? podsOf(manifest)[0] : manifest
  const pod = admitPod(object)
  const uid = (object as { metadata?: { uid?: string } }).metadata?.uid ?? randomUUID()
  const podDir = `${node.podsDir}/${pod.namespace}_${pod.name}_${uid}`
  const memTotal = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024
  const facts: NodeFacts = {
    nodeName: node.name,
    uid,
    logDirectory: `${podDir}/logs`,
    cgroupParent: `/${node.name}/pod${uid}`,
    memoryCapacity: memTotal,
    cpuCapacity: cpus().length,
    clusterDns: { servers: options.clusterDns ?? [], domain: 'cluster.local' },
    nodeDns: parseResolvConf(existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : ''),
    seen: new Date().toISOString(),
  }
  const timeoutMs = (options.stepTimeoutSeconds ?? 120) * 1000
  const data = { configMaps: options.configMaps ?? {}, secrets: options.secrets ?? {} }
  const cri = node.cri
  const hostIPs = [node.gateways.ipv4, node.gateways.ipv6]

  const events: PodEvent[] = []
  const ids = new Map<string, string>()
  const startStatuses = new Map<string, ProcessStatus>()
  const readyAt = new Map<string, number>()
  const stopRequestedAt = new Map<string, number>()
  const neverCreated = new Map<string, string>()
  const lastReports = new Map<string, ContainerReport>()
  let status: PodStatus = 'Running'
  let failure: { container: string; message: string } | undefined
  let sandboxId: string | undefined
  let sandbox: PodSandboxConfig | undefined
  let ips: string[] = []
  let sandboxPid = 0
  let stopping = false
  let wake = (): void => undefined
  const stopSignal = new Promise<void>(resolve => {
    wake = resolve
  })
  // A probe worker's wait, cut short when the pod is being stopped.
  const pause = (ms: number) => Promise.race([sleep(ms), stopSignal])
  let stopped: Promise<ContainerReport[]> | undefined
  const background: Promise<void>[] = []

  const emit = async (type: EventType, container?: string, message?: string): Promise<void> => {
    const event: PodEvent = { at: Date.now(), type, ...(container !== undefined && { container }), ...(message !== undefined && { message }) }
    events.push(event)
    await options.onEvent?.(event, handle)
  }
  // The first failure names the pod's status; an app container's failure does not keep the others from starting.
  const fail = async (next: PodStatus, container: string, message: string): Promise<void> => {
    if (status === 'Running') {
      status = next
      failure = { container, message }
    }
    await emit('Failed', container, `${next}: ${message}`)
  }
  const specOf = (name: string): ContainerSpec => {
    const found = pod.containers.find(c => c.spec.name === name)
    if (!found) throw new Error(`pod ${pod.name} has no container ${name}`)
    return found
  }
  const idOf = (name: string): string => {
    const id = ids.get(name)
    if (!id) throw new Error(`container ${name} of pod ${pod.name} was never created (${neverCreated.get(name) ?? 'not reached'})`)
    return id
  }

  const report = async (spec: ContainerSpec): Promise<ContainerReport> => {
    const name = spec.spec.name
    const id = ids.get(name)
    const base = {
      name,
      role: spec.role,
      id,
      startStatus: startStatuses.get(name),
      readyAt: readyAt.get(name),
      stopRequestedAt: stopRequestedAt.get(name),
    }
    if (!id) {
      return {
        ...base,
        state: 'not created',
        exitCode: undefined,
        reason: neverCreated.get(name) ?? 'not reached',
        pid: undefined,
        runtime: undefined,
        createdAt: undefined,
        startedAt: undefined,
        finishedAt: undefined,
      }
    }
    // After stop() the runtime has removed it: its last report stands.
    const found = await cri.containerStatus(id).catch((error: unknown) => {
      if (isNotFound(error) && lastReports.has(name)) return undefined
      throw error
    })
    if (!found) return lastReports.get(name)!
    const { status: s, info } = found
    const state =
      ({ CONTAINER_CREATED: 'created', CONTAINER_RUNNING: 'running', CONTAINER_EXITED: 'exited' } as const)[s.state as string] ?? 'unknown'
    const current: ContainerReport = {
      ...base,
      state,
      exitCode: state === 'exited' ? s.exit_code : undefined,
      reason: s.reason,
      pid: info.pid || undefined,
      runtime: runtimeView(info),
      createdAt: nsToMs(s.created_at),
      startedAt: nsToMs(s.started_at),
      finishedAt: nsToMs(s.finished_at),
    }
    lastReports.set(name, current)
    return current
  }

  const waitForState = async (name: string, done: (r: ContainerReport) => boolean, what: string, limitMs = timeoutMs): Promise<ContainerReport> => {
    for (const started = Date.now(); ; await sleep(100)) {
      const current = await report(specOf(name))
      if (done(current)) return current
      if (Date.now() - started > limitMs) throw new Error(`pod ${pod.name}: ${name} did not ${what} within ${limitMs} ms (state ${current.state})`)
    }
  }

  // A tcpSocket or httpGet action, from the node, as the kubelet's prober runs it.
  const fromNode = async (
    action: { tcp: { host?: string; port: number } } | { http: { host?: string; port: number; path: string; headers: Record<string, string> } },
    timeoutSeconds: number,
  ) => {
    const ms = String(timeoutSeconds * 1000)
    const args =
      'tcp' in action
        ? ['tcp', action.tcp.host ?? ips[0] ?? '', String(action.tcp.port), ms]
        : ['http', action.http.host ?? ips[0] ?? '', String(action.http.port), action.http.path, ms, JSON.stringify(action.http.headers)]
    const result = await node.run(process.execPath, [NODE_PROBE, ...args])
    return { ok: result.exitCode === 0, message: result.output.trim() }
  }

  const runHook = async (name: string, hook: Hook, timeoutSeconds: number): Promise<{ ok: boolean; message: string }> => {
    if ('sleepSeconds' in hook) {
      await sleep(Math.min(hook.sleepSeconds, timeoutSeconds) * 1000)
      return { ok: true, message: `slept ${hook.sleepSeconds} s` }
    }
    if ('http' in hook) return fromNode(hook, timeoutSeconds)
    const result = await cri
      .execSync(idOf(name), hook.exec, timeoutSeconds)
      .catch((error: CriError) => ({ exitCode: -1, stdout: '', stderr: error.message }))
    return {
      ok: result.exitCode === 0,
      message: `exit ${result.exitCode}${result.stdout || result.stderr ? `: ${(result.stdout + result.stderr).trim()}` : ''}`,
    }
  }

  const probeOnce = async (name: string, probe: StartupProbe): Promise<{ ok: boolean; message: string }> => {
    if ('exec' in probe.action) {
      const result = await cri
        .execSync(idOf(name), probe.action.exec, probe.timeoutSeconds)
        .catch((error: CriError) => ({ exitCode: -1, stdout: '', stderr: error.details }))
      return {
        ok: result.exitCode === 0,
        message: `exit ${result.exitCode}${result.stdout || result.stderr ? `: ${(result.stdout + result.stderr).trim()}` : ''}`,
      }
    }
    return fromNode(probe.action, probe.timeoutSeconds)
  }

  /** The kubelet's startup probe worker: after the initial delay, one run per period until it passes or fails failureThreshold times. */
  const startupProbe = async (name: string, probe: StartupProbe): Promise<'passed' | 'failed' | 'exited' | 'stopped'> => {
    await pause(probe.initialDelaySeconds * 1000)
    let failures = 0
    for (let tick = Date.now(); ; ) {
      if (stopping) return 'stopped'
      const current = await report(specOf(name))
      if (current.state !== 'running') return 'exited'
      const outcome = await probeOnce(name, probe)
      if (stopping) return 'stopped'
      if (outcome.ok) {
        await emit('ProbePassed', name, outcome.message)
        return 'passed'
      }
      failures += 1
      await emit('ProbeFailed', name, `${failures}/${probe.failureThreshold}: ${outcome.message}`)
      if (failures >= probe.failureThreshold) return 'failed'
      tick += probe.periodSeconds * 1000
      await pause(Math.max(0, tick - Date.now()))
    }
  }

  /** Creates and starts one container and runs its postStart hook; false (with the pod's status set) when that fails. */
  const start = async (spec: ContainerSpec): Promise<boolean> => {
    const name = spec.spec.name
    const prefix = spec.role === 'app' ? '' : 'Init:'
    const image = spec.spec.image ?? ''
    const user = await cri.imageStatus(image)
    if (!user) {
      neverCreated.set(name, 'ErrImagePull')
      await fail(`${prefix}ErrImagePull`, name, `${image} is not among the node's images (the runner never pulls)`)
      return false
    }
    const configDir = `${podDir}/containers/${name}`
    mkdirSync(configDir, { recursive: true })
    const terminationMessageFile = `${configDir}/termination-log`
    writeFileSync(terminationMessageFile, '')
    chmodSync(terminationMessageFile, 0o666)
    let config: ReturnType<typeof containerConfig>
    try {
      config = containerConfig(pod, spec, facts, {
        podIPs: ips,
        hostIPs,
        imageUser: user,
        volumes: volumePaths,
        terminationMessageFile,
        hostsFile: pod.manifest.spec!.hostNetwork ? undefined : `${podDir}/etc-hosts`,
        ...data,
      })
    } catch (error) {
      if (!(error instanceof ContainerConfigError)) throw error
      neverCreated.set(name, 'CreateContainerConfigError')
      await fail(`${prefix}CreateContainerConfigError`, name, error.message)
      return false
    }
    try {
      ids.set(name, await cri.createContainer(sandboxId!, config, sandbox!))
    } catch (error) {
      if (!(error instanceof CriError)) throw error
      neverCreated.set(name, 'CreateContainerError')
      await fail(`${prefix}CreateContainerError`, name, error.details)
      return false
    }
    await emit('Created', name)
    try {
      await cri.startContainer(idOf(name))
    } catch (error) {
      if (!(error instanceof CriError)) throw error
      await fail(`${prefix}StartError`, name, error.details)
      return false
    }
    await emit('Started', name)
    const { info } = await cri.containerStatus(idOf(name))
    if (info.pid) {
      pids.set(name, info.pid)
      const first = await readAfterExec(info.pid)
      if (first) startStatuses.set(name, first)
    }
    const postStart = hookOf(spec, 'postStart')
    if (postStart) {
      const outcome = await runHook(name, postStart, timeoutMs / 1000)
      if (!outcome.ok) {
        // The kubelet kills a container whose postStart hook failed.
        await cri.stopContainer(idOf(name), pod.terminationGracePeriodSeconds).catch(() => undefined)
        await fail(`${prefix}PostStartHookError`, name, outcome.message)
        return false
      }
      await emit('PostStartDone', name, outcome.message)
    }
    return true
  }

  const volumePaths: Record<string, string> = {}
  const pids = new Map<string, number>()

  const handle: Pod = {
    name: pod.name,
    namespace: pod.namespace,
    uid,
    get status() {
      return status
    },
    get failure() {
      return failure
    },
    get sandboxId() {
      return sandboxId
    },
    get ips() {
      return ips
    },
    get netns() {
      return `/proc/${sandboxPid}/ns/net`
    },
    events,
    notes: pod.notes,
    containers: () => Promise.all(pod.containers.map(report)),
    container: name => report(specOf(name)),
    exec: (name, cmd, timeoutSeconds = 30) => cri.execSync(idOf(name), cmd, timeoutSeconds),
    logs: name => {
      const file = `${facts.logDirectory}/${name}/0.log`
      if (!existsSync(file)) return []
      // CRI log lines: <time> <stream> <P|F> <text>; P marks a partial line the next one continues.
      const lines: string[] = []
      let partial = ''
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const match = /^\S+ (?:stdout|stderr) ([PF]) (.*)$/.exec(line)
        if (!match) continue
        partial += match[2]
        if (match[1] === 'F') {
          lines.push(partial)
          partial = ''
        }
      }
      return lines
    },
    waitForLog: async (name, text, limit = 10_000) => {
      for (const started = Date.now(); !handle.logs(name).some(line => line.includes(text)); await sleep(100)) {
        if (Date.now() - started > limit)
          throw new Error(`pod ${pod.name}: ${name} did not log ${text} within ${limit} ms: ${handle.logs(name).join(' | ')}`)
      }
    },
    waitForExit: (name, limit) => waitForState(name, r => r.state === 'exited', 'exit', limit),
    processOf: name => {
      const pid = pids.get(name)
      if (!pid) throw new Error(`container ${name} of pod ${pod.name} has no process`)
      let children: number[] = []
      try {
        children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
      } catch {}
      return { pid, status: readStatus(pid), children }
    },
    stop: options => (stopped ??= stopPod(options?.gracePeriodSeconds ?? pod.terminationGracePeriodSeconds)),
  }

  const stopPod = async (grace: number): Promise<ContainerReport[]> => {
    stopping = true
    wake()
    await Promise.all(background)
    if (sandboxId) {
      const reports = await handle.containers()
      const running = reports.filter(r => r.state === 'running')
      const terminated = new Set(reports.filter(r => r.state !== 'running').map(r => r.name))
      const sidecars = pod.containers.filter(c => c.role === 'sidecar').map(c => c.spec.name)
      const apps = pod.containers.filter(c => c.role !== 'sidecar').map(c => c.spec.name)
      // The kubelet's termination ordering: a sidecar's turn comes once every app container and every sidecar
      // started after it has exited.
      const waitForTurn = async (name: string, limitSeconds: number): Promise<number> => {
        const started = Date.now()
        const after = sidecars.slice(sidecars.indexOf(name) + 1)
        while ([...apps, ...after].some(other => !terminated.has(other)) && Date.now() - started < limitSeconds * 1000) await sleep(50)
        return (Date.now() - started) / 1000
      }
      await Promise.all(
        running.map(async r => {
          let remaining = grace
          const preStop = hookOf(specOf(r.name), 'preStop')
          if (preStop && remaining > 0) {
            const started = Date.now()
            const outcome = await runHook(r.name, preStop, remaining)
            await emit('PreStopDone', r.name, outcome.message)
            remaining -= Math.floor((Date.now() - started) / 1000)
          }
          if (r.role === 'sidecar' && remaining > 0) remaining -= Math.floor(await waitForTurn(r.name, remaining))
          remaining = Math.max(remaining, MINIMUM_GRACE_SECONDS)
          stopRequestedAt.set(r.name, Date.now())
          await emit('Stopping', r.name, `grace ${remaining} s`)
          await cri.stopContainer(r.id!, remaining)
          terminated.add(r.name)
          await emit('Stopped', r.name)
        }),
      )
    }
    const final = await handle.containers()
    if (sandboxId) {
      await cri.stopPodSandbox(sandboxId)
      await emit('SandboxStopped')
      for (const id of ids.values()) await cri.removeContainer(id)
      await cri.removePodSandbox(sandboxId)
    }
    return final
  }

  // --- The start, in the kubelet's order ---
  mkdirSync(facts.logDirectory, { recursive: true })
  let plans: ReturnType<typeof volumePlans> = []
  try {
    plans = volumePlans(pod, facts, data)
  } catch (error) {
    if (!(error instanceof ContainerConfigError)) throw error
    await fail('Init:CreateContainerConfigError', '', error.message)
    return handle
  }
  const fsGroup = pod.manifest.spec!.securityContext?.fsGroup
  for (const plan of plans) {
    const path = `${podDir}/volumes/${plan.name}`
    mkdirSync(path, { recursive: true })
    volumePaths[plan.name] = path
    for (const file of plan.files) {
      mkdirSync(dirname(`${path}/${file.path}`), { recursive: true })
      writeFileSync(`${path}/${file.path}`, file.content, { mode: file.mode })
      chmodSync(`${path}/${file.path}`, file.mode)
    }
    // emptyDir: world-writable, and with fsGroup owned by that group, setgid, as the kubelet sets volume ownership.
    chmodSync(path, plan.kind === 'emptyDir' ? 0o777 | (fsGroup === undefined ? 0 : 0o2000) : 0o755)
    if (fsGroup !== undefined) chownSync(path, 0, fsGroup)
  }

  sandbox = sandboxConfig(pod, facts)
  try {
    sandboxId = await cri.runPodSandbox(sandbox)
  } catch (error) {
    if (!(error instanceof CriError)) throw error
    await fail('FailedCreatePodSandBox', '', error.details)
    return handle
  }
  const { status: sandboxStatus, info } = await cri.podSandboxStatus(sandboxId)
  sandboxPid = info.pid ?? 0
  ips = [sandboxStatus.network?.ip, ...(sandboxStatus.network?.additional_ips ?? []).map(a => a.ip)].filter((ip): ip is string => Boolean(ip))
  if (!pod.manifest.spec!.hostNetwork) writeFileSync(`${podDir}/etc-hosts`, hostsFile(pod, facts, ips))
  await emit('SandboxReady', undefined, ips.join(' '))

  for (const spec of pod.containers) {
    const name = spec.spec.name
    if (!(await start(spec))) {
      // The kubelet goes on to the next app container; the init phase stops at the first failure.
      if (spec.role === 'app') continue
      break
    }
    if (spec.role === 'init') {
      const done = await waitForState(name, r => r.state === 'exited', 'run to completion')
      await emit('Exited', name, `exit ${done.exitCode}`)
      if (done.exitCode !== 0) {
        await fail('Init:Error', name, `exited ${done.exitCode}`)
        break
      }
      readyAt.set(name, Date.now())
      continue
    }
    const probe = startupProbeOf(spec)
    if (spec.role === 'sidecar' && probe) {
      const outcome = await startupProbe(name, probe)
      if (outcome !== 'passed') {
        if (outcome === 'failed') await fail('Init:StartupProbeFailed', name, `startup probe failed ${probe.failureThreshold} times`)
        else await fail('Init:Error', name, 'exited before its startup probe passed')
        break
      }
    } else if (probe) {
      // An app container's startup probe holds nothing: the kubelet starts the next container right away.
      background.push(startupProbe(name, probe).then(() => undefined))
    }
    readyAt.set(name, Date.now())
  }
  for (const spec of pod.containers)
    if (!ids.has(spec.spec.name) && !neverCreated.has(spec.spec.name)) neverCreated.set(spec.spec.name, 'not reached')
  return handle
}
