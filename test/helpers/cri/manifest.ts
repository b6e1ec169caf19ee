// What the API server and the kubelet make of a Pod manifest before the runtime sees it, for one node and no API
// server: the API server's validation (kubernetes-models' schema) and defaults, then the kubelet's mapping of the
// pod and each container to CRI's PodSandboxConfig and ContainerConfig (kuberuntime's generatePodSandboxConfig and
// generateContainerConfig, facts read from Kubernetes 1.29+). Pure: the node's facts come in as a value. A field
// the runner does not carry out is refused with its path, or, where it cannot change what runs (scheduling,
// readiness), listed in `notes`: never silently dropped.

import { Pod as PodModel, type IPod } from 'kubernetes-models/v1'
import type { IContainer } from 'kubernetes-models/v1/Container'
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar'
import type { ILifecycleHandler } from 'kubernetes-models/v1/LifecycleHandler'
import type { IPodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext'
import type { IProbe } from 'kubernetes-models/v1/Probe'
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext'
import type { IVolume } from 'kubernetes-models/v1/Volume'
import type { ContainerConfig, LinuxContainerResources, Mount, NamespaceOption, PodSandboxConfig, SecurityProfile } from './client.js'

/** A manifest the API server would refuse, or that asks for something this runner does not do. */
export class ManifestError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`)
  }
}

/** What the kubelet would refuse when it builds one container (kubectl shows CreateContainerConfigError). */
export class ContainerConfigError extends Error {}

export type Role = 'init' | 'sidecar' | 'app'

export interface ContainerSpec {
  readonly spec: IContainer
  readonly role: Role
  /** Where it sits in the manifest, for messages: spec.initContainers[1]. */
  readonly path: string
}

/** A pod as the API server stores it: validated and defaulted. */
export interface AdmittedPod {
  readonly name: string
  readonly namespace: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  readonly manifest: IPod
  readonly containers: readonly ContainerSpec[]
  readonly terminationGracePeriodSeconds: number
  /** Fields that cannot change what runs on one node, and so were not carried out, with why. */
  readonly notes: readonly string[]
}

// --- Admission ---------------------------------------------------------------------------------------------------

type Known = Readonly<Record<string, true | string>>
// true: carried out. A string: accepted but not carried out, and why (a note). Anything else is refused.
const POD_SPEC: Known = {
  containers: true,
  initContainers: true,
  volumes: true,
  restartPolicy: true,
  terminationGracePeriodSeconds: true,
  dnsPolicy: true,
  dnsConfig: true,
  hostname: true,
  hostAliases: true,
  hostNetwork: true,
  hostPID: true,
  hostIPC: true,
  shareProcessNamespace: true,
  securityContext: true,
  serviceAccountName: true,
  serviceAccount: true,
  nodeName: true,
  hostUsers: true,
  automountServiceAccountToken: 'no API server: no service account token is mounted either way',
  enableServiceLinks: 'no API server: there are no Service environment variables either way',
  imagePullSecrets: 'the runner never pulls: images come from the node',
  priorityClassName: 'scheduling only',
  priority: 'scheduling only',
  preemptionPolicy: 'scheduling only',
  schedulerName: 'scheduling only',
  nodeSelector: 'scheduling only',
  affinity: 'scheduling only',
  tolerations: 'scheduling only',
  topologySpreadConstraints: 'scheduling only',
  schedulingGates: 'scheduling only',
  readinessGates: 'readiness only gates Services',
  os: 'the node is Linux',
}
const CONTAINER: Known = {
  name: true,
  image: true,
  command: true,
  args: true,
  workingDir: true,
  env: true,
  envFrom: true,
  ports: true,
  resources: true,
  securityContext: true,
  lifecycle: true,
  startupProbe: true,
  restartPolicy: true,
  stdin: true,
  stdinOnce: true,
  tty: true,
  terminationMessagePath: true,
  terminationMessagePolicy: true,
  volumeMounts: true,
  imagePullPolicy: 'the runner never pulls: images come from the node',
  readinessProbe: 'not run: readiness only gates Services, and starts nothing',
  livenessProbe: 'not run: the runner restarts no container',
  resizePolicy: 'no resize here',
}
const SECURITY_CONTEXT: Known = {
  runAsUser: true,
  runAsGroup: true,
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: true,
  privileged: true,
  capabilities: true,
  seccompProfile: true,
  procMount: true,
  appArmorProfile: 'AppArmor is off on this node (disable_apparmor)',
  windowsOptions: 'the node is Linux',
}
const POD_SECURITY_CONTEXT: Known = {
  runAsUser: true,
  runAsGroup: true,
  runAsNonRoot: true,
  fsGroup: true,
  supplementalGroups: true,
  sysctls: true,
  seccompProfile: true,
  fsGroupChangePolicy: 'volumes are made for the pod, so they always get fsGroup',
  appArmorProfile: 'AppArmor is off on this node (disable_apparmor)',
  windowsOptions: 'the node is Linux',
}
const PROBE: Known = {
  exec: true,
  tcpSocket: true,
  httpGet: true,
  initialDelaySeconds: true,
  periodSeconds: true,
  timeoutSeconds: true,
  successThreshold: true,
  failureThreshold: true,
  terminationGracePeriodSeconds: 'the runner restarts no container',
}
const HANDLER: Known = { exec: true, httpGet: true, sleep: true }
const VOLUME_MOUNT: Known = { name: true, mountPath: true, readOnly: true, subPath: true }
const VOLUME: Known = { name: true, emptyDir: true, downwardAPI: true, configMap: true, secret: true, projected: true }

const checkKeys = (value: unknown, path: string, known: Known, notes: string[]): void => {
  if (value === undefined || value === null) return
  for (const key of Object.keys(value as object)) {
    const verdict = known[key]
    if (verdict === undefined) throw new ManifestError(`${path}.${key}`, 'not carried out by this runner; take it out, or teach the runner')
    if (verdict !== true) notes.push(`${path}.${key}: ${verdict}`)
  }
}

const checkHandler = (handler: ILifecycleHandler | undefined, path: string, notes: string[]): void => {
  if (handler === undefined) return
  checkKeys(handler, path, HANDLER, notes)
  if (Object.keys(handler).length !== 1) throw new ManifestError(path, 'exactly one of exec, httpGet or sleep')
  if (handler.httpGet && (handler.httpGet.scheme ?? 'HTTP') !== 'HTTP') throw new ManifestError(`${path}.httpGet.scheme`, 'only HTTP')
}

const checkProbe = (probe: IProbe | undefined, path: string, notes: string[]): void => {
  if (probe === undefined) return
  checkKeys(probe, path, PROBE, notes)
  const actions = ['exec', 'tcpSocket', 'httpGet'].filter(k => k in probe)
  if (actions.length !== 1) throw new ManifestError(path, 'exactly one of exec, tcpSocket or httpGet (grpc is not carried out)')
  if (probe.httpGet && (probe.httpGet.scheme ?? 'HTTP') !== 'HTTP') throw new ManifestError(`${path}.httpGet.scheme`, 'only HTTP')
  if ((probe.successThreshold ?? 1) !== 1) throw new ManifestError(`${path}.successThreshold`, 'must be 1 for a startup probe')
}

/**
 * admitPod validates a manifest as the API server would (kubernetes-models' schema of Kubernetes' own OpenAPI) and
 * checks that every field is one the runner carries out. Pure; throws ManifestError naming the field.
 */
export const admitPod = (manifest: unknown): AdmittedPod => {
  const object = manifest as IPod
  if (object?.kind !== 'Pod' || object.apiVersion !== 'v1') throw new ManifestError('kind', 'a v1 Pod is expected')
  try {
    new PodModel(object).validate()
  } catch (error) {
    throw new ManifestError('(schema)', error instanceof Error ? error.message : String(error))
  }
  const spec = object.spec
  if (!spec) throw new ManifestError('spec', 'required')
  const name = object.metadata?.name
  if (!name) throw new ManifestError('metadata.name', 'required (generateName needs an API server)')
  const notes: string[] = []
  checkKeys(spec, 'spec', POD_SPEC, notes)
  checkKeys(spec.securityContext, 'spec.securityContext', POD_SECURITY_CONTEXT, notes)
  if (spec.securityContext?.seLinuxOptions) throw new ManifestError('spec.securityContext.seLinuxOptions', 'SELinux is off on this node')
  const containers: ContainerSpec[] = []
  const names = new Set<string>()
  for (const [kind, list] of [
    ['initContainers', spec.initContainers ?? []],
    ['containers', spec.containers],
  ] as const) {
    list.forEach((container, i) => {
      const path = `spec.${kind}[${i}]`
      if (names.has(container.name)) throw new ManifestError(`${path}.name`, `${container.name} is used twice`)
      names.add(container.name)
      checkKeys(container, path, CONTAINER, notes)
      checkKeys(container.securityContext, `${path}.securityContext`, SECURITY_CONTEXT, notes)
      if (container.securityContext?.seLinuxOptions) throw new ManifestError(`${path}.securityContext.seLinuxOptions`, 'SELinux is off on this node')
      const procMount = container.securityContext?.procMount ?? 'Default'
      if (procMount !== 'Default') throw new ManifestError(`${path}.securityContext.procMount`, 'only Default (Unmasked needs user namespaces)')
      checkProbe(container.startupProbe, `${path}.startupProbe`, notes)
      checkHandler(container.lifecycle?.postStart, `${path}.lifecycle.postStart`, notes)
      checkHandler(container.lifecycle?.preStop, `${path}.lifecycle.preStop`, notes)
      if (container.lifecycle?.stopSignal) throw new ManifestError(`${path}.lifecycle.stopSignal`, 'not carried out by this runner')
      container.volumeMounts?.forEach((mount, m) => {
        checkKeys(mount, `${path}.volumeMounts[${m}]`, VOLUME_MOUNT, notes)
        if (!(spec.volumes ?? []).some(v => v.name === mount.name))
          throw new ManifestError(`${path}.volumeMounts[${m}].name`, `no volume ${mount.name} in spec.volumes`)
      })
      for (const [p, port] of (container.ports ?? []).entries())
        if (port.hostPort) throw new ManifestError(`${path}.ports[${p}].hostPort`, 'the node has no portmap plugin')
      if (container.restartPolicy !== undefined && (kind === 'containers' || container.restartPolicy !== 'Always'))
        throw new ManifestError(`${path}.restartPolicy`, 'only Always, and only on an init container (a native sidecar)')
      if (container.restartPolicy === undefined && kind === 'initContainers' && (container.startupProbe || container.lifecycle?.preStop)) {
        // The API server refuses probes and lifecycle hooks on a run-to-completion init container.
        throw new ManifestError(path, 'probes and lifecycle hooks need restartPolicy: Always on an init container')
      }
      const role: Role = kind === 'containers' ? 'app' : container.restartPolicy === 'Always' ? 'sidecar' : 'init'
      containers.push({ spec: container, role, path })
    })
  }
  ;(spec.volumes ?? []).forEach((volume, v) => {
    checkKeys(volume, `spec.volumes[${v}]`, VOLUME, notes)
    const sources = Object.keys(volume).filter(k => k !== 'name')
    if (sources.length !== 1) throw new ManifestError(`spec.volumes[${v}]`, 'exactly one of emptyDir, downwardAPI, configMap, secret or projected')
    for (const source of volume.projected?.sources ?? []) {
      if (!source.downwardAPI && !source.configMap && !source.secret)
        throw new ManifestError(`spec.volumes[${v}].projected`, 'only downwardAPI, configMap and secret sources (no API server for tokens)')
    }
  })
  if (spec.hostUsers === false) throw new ManifestError('spec.hostUsers', "containerd 1.6's CRI has no user namespaces")
  return {
    name,
    namespace: object.metadata?.namespace ?? 'default',
    labels: object.metadata?.labels ?? {},
    annotations: object.metadata?.annotations ?? {},
    manifest: object,
    containers,
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? 30,
    notes,
  }
}

// --- Quantities --------------------------------------------------------------------------------------------------

const SUFFIXES: Readonly<Record<string, number>> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
}

/** parseQuantity reads a Kubernetes quantity ("10m", "128Mi", "1.5", "1e3") as a number of base units. Pure. */
export const parseQuantity = (value: string | number, path: string): number => {
  if (typeof value === 'number') return value
  const match = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(value)
  if (!match) throw new ManifestError(path, `${JSON.stringify(value)} is not a quantity`)
  return Number(match[1]) * (SUFFIXES[match[2] ?? ''] ?? 1)
}

interface Amounts {
  readonly cpu?: number
  readonly memory?: number
}
const amounts = (list: Readonly<Record<string, string | number>> | undefined, path: string): Amounts => ({
  ...(list?.['cpu'] !== undefined && { cpu: parseQuantity(list['cpu'], `${path}.cpu`) }),
  ...(list?.['memory'] !== undefined && { memory: parseQuantity(list['memory'], `${path}.memory`) }),
})

/** Requests default to limits, as the API server defaults them. */
const resourcesOf = (c: IContainer, path: string): { requests: Amounts; limits: Amounts } => {
  const limits = amounts(c.resources?.limits as Record<string, string>, `${path}.resources.limits`)
  return { requests: { ...limits, ...amounts(c.resources?.requests as Record<string, string>, `${path}.resources.requests`) }, limits }
}

type Qos = 'Guaranteed' | 'Burstable' | 'BestEffort'

/** The pod's QoS class from every container's cpu and memory (kubelet's qos.GetPodQOS). Pure. */
export const qosOf = (pod: AdmittedPod): Qos => {
  const all = pod.containers.map(c => resourcesOf(c.spec, c.path))
  if (all.every(r => Object.keys(r.requests).length === 0 && Object.keys(r.limits).length === 0)) return 'BestEffort'
  const guaranteed = all.every(
    r => r.limits.cpu !== undefined && r.limits.memory !== undefined && r.requests.cpu === r.limits.cpu && r.requests.memory === r.limits.memory,
  )
  return guaranteed ? 'Guaranteed' : 'Burstable'
}

// --- The node's facts and the sandbox ----------------------------------------------------------------------------

export interface DnsConfig {
  readonly servers: readonly string[]
  readonly searches: readonly string[]
  readonly options: readonly string[]
}

/** What the kubelet knows when it builds the configs: the node, and this pod's place on it. */
export interface NodeFacts {
  readonly nodeName: string
  /** The pod's UID (the API server's metadata.uid). */
  readonly uid: string
  /** The pod's log directory (the kubelet's /var/log/pods/<ns>_<name>_<uid>). */
  readonly logDirectory: string
  readonly cgroupParent: string
  /** The node's memory, for a Burstable container's oom_score_adj. */
  readonly memoryCapacity: number
  readonly cpuCapacity: number
  /** The kubelet's --cluster-dns and --cluster-domain; without servers, ClusterFirst falls back to Default. */
  readonly clusterDns: { readonly servers: readonly string[]; readonly domain: string }
  /** The node's own resolv.conf, for dnsPolicy Default. */
  readonly nodeDns: DnsConfig
  /** When the kubelet first saw the pod (its kubernetes.io/config.seen annotation). */
  readonly seen: string
}

const namespacesOf = (pod: AdmittedPod): NamespaceOption => {
  const spec = pod.manifest.spec!
  return {
    network: spec.hostNetwork ? 'NODE' : 'POD',
    pid: spec.hostPID ? 'NODE' : spec.shareProcessNamespace ? 'POD' : 'CONTAINER',
    ipc: spec.hostIPC ? 'NODE' : 'POD',
  }
}

const seccompOf = (profile: { type: string; localhostProfile?: string } | undefined): SecurityProfile => {
  // The kubelet sends Unconfined when nothing asks for a profile (unless its --seccomp-default is set).
  if (!profile || profile.type === 'Unconfined') return { profile_type: 'Unconfined' }
  if (profile.type === 'RuntimeDefault') return { profile_type: 'RuntimeDefault' }
  return { profile_type: 'Localhost', localhost_ref: profile.localhostProfile ?? '' }
}

const unique = <T>(list: readonly T[]): T[] => [...new Set(list)]

/** The pod's resolv.conf as the kubelet computes it from dnsPolicy and dnsConfig (kubelet's dns.GetPodDNS). Pure. */
export const dnsOf = (pod: AdmittedPod, facts: NodeFacts): DnsConfig => {
  const spec = pod.manifest.spec!
  let policy = spec.dnsPolicy ?? 'ClusterFirst'
  if (policy === 'ClusterFirstWithHostNet') policy = 'ClusterFirst'
  else if (policy === 'ClusterFirst' && spec.hostNetwork) policy = 'Default'
  if (policy === 'ClusterFirst' && facts.clusterDns.servers.length === 0) policy = 'Default'
  const domain = facts.clusterDns.domain
  const base: DnsConfig =
    policy === 'None'
      ? { servers: [], searches: [], options: [] }
      : policy === 'Default'
        ? facts.nodeDns
        : {
            servers: facts.clusterDns.servers,
            searches: [`${pod.namespace}.svc.${domain}`, `svc.${domain}`, domain, ...facts.nodeDns.searches],
            options: ['ndots:5'],
          }
  const extra = spec.dnsConfig
  if (!extra) return base
  const options = new Map(base.options.map(o => [o.split(':')[0]!, o] as const))
  for (const o of extra.options ?? []) options.set(o.name!, o.value === undefined ? o.name! : `${o.name}:${o.value}`)
  return {
    servers: unique([...base.servers, ...(extra.nameservers ?? [])]),
    searches: unique([...base.searches, ...(extra.searches ?? [])]),
    options: [...options.values()],
  }
}

/** The kubelet's labels on every sandbox and container of the pod. */
const podLabels = (pod: AdmittedPod, uid: string): Record<string, string> => ({
  'io.kubernetes.pod.name': pod.name,
  'io.kubernetes.pod.namespace': pod.namespace,
  'io.kubernetes.pod.uid': uid,
})

const hostnameOf = (pod: AdmittedPod, facts: NodeFacts): string => {
  const spec = pod.manifest.spec!
  if (spec.hostNetwork) return facts.nodeName
  return (spec.hostname ?? pod.name).slice(0, 63).replace(/[-.]+$/, '')
}

/** sandboxConfig is the RunPodSandbox config the kubelet builds for `pod`. Pure. */
export const sandboxConfig = (pod: AdmittedPod, facts: NodeFacts): PodSandboxConfig => {
  const spec = pod.manifest.spec!
  const sc: IPodSecurityContext = spec.securityContext ?? {}
  const dns = dnsOf(pod, facts)
  return {
    metadata: { name: pod.name, uid: facts.uid, namespace: pod.namespace, attempt: 0 },
    hostname: hostnameOf(pod, facts),
    log_directory: facts.logDirectory,
    ...(!spec.hostNetwork && { dns_config: { servers: [...dns.servers], searches: [...dns.searches], options: [...dns.options] } }),
    port_mappings: pod.containers
      .filter(c => c.role !== 'init')
      .flatMap(c =>
        (c.spec.ports ?? []).map(p => ({ protocol: p.protocol ?? 'TCP', container_port: p.containerPort, host_port: 0, host_ip: p.hostIP ?? '' })),
      ),
    labels: { ...pod.labels, ...podLabels(pod, facts.uid) },
    annotations: { ...pod.annotations, 'kubernetes.io/config.seen': facts.seen, 'kubernetes.io/config.source': 'api' },
    linux: {
      cgroup_parent: facts.cgroupParent,
      security_context: {
        namespace_options: namespacesOf(pod),
        ...(sc.runAsUser !== undefined && { run_as_user: { value: sc.runAsUser } }),
        ...(sc.runAsGroup !== undefined && { run_as_group: { value: sc.runAsGroup } }),
        supplemental_groups: supplementalGroups(sc),
        privileged: pod.containers.some(c => c.spec.securityContext?.privileged === true),
        seccomp: seccompOf(sc.seccompProfile),
      },
      sysctls: Object.fromEntries((sc.sysctls ?? []).map(s => [s.name, s.value])),
    },
  }
}

const supplementalGroups = (sc: IPodSecurityContext): number[] =>
  unique([...(sc.supplementalGroups ?? []), ...(sc.fsGroup === undefined ? [] : [sc.fsGroup])])

// --- Containers --------------------------------------------------------------------------------------------------

/** The paths the kubelet masks and makes read-only in every unprivileged container (procMount Default). */
export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
]
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']

/**
 * expandVars replaces $(NAME) with the variable's value as the kubelet does in command, args and env values:
 * "$$" is a literal "$", and a reference to an unknown variable stays as written. Pure.
 */
export const expandVars = (text: string, lookup: (name: string) => string | undefined): string =>
  text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => (name === undefined ? '$' : (lookup(name) ?? whole)))

/** The facts a container's config needs beyond the pod: known once the sandbox runs and the image is looked up. */
export interface ContainerFacts {
  readonly podIPs: readonly string[]
  readonly hostIPs: readonly string[]
  /** The image's user, as the runtime reads it: a uid, or only a name. */
  readonly imageUser: { readonly uid?: number; readonly username: string }
  /** Host path of each volume by name, made by the runner. */
  readonly volumes: Readonly<Record<string, string>>
  /** Host path of this container's termination message file. */
  readonly terminationMessageFile: string
  /** Host path of the pod's /etc/hosts, unless the pod is on the host network. */
  readonly hostsFile: string | undefined
  /** ConfigMap and Secret data the pod may refer to (there is no API server to read them from). */
  readonly configMaps: Readonly<Record<string, Readonly<Record<string, string>>>>
  readonly secrets: Readonly<Record<string, Readonly<Record<string, string>>>>
}

/** The value of a downward API field path for this pod. Pure; throws ContainerConfigError for an unknown path. */
export const fieldValue = (pod: AdmittedPod, facts: NodeFacts, podIPs: readonly string[], hostIPs: readonly string[], path: string): string => {
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path)
  if (keyed) return (keyed[1] === 'labels' ? pod.labels : pod.annotations)[keyed[2]!] ?? ''
  const spec = pod.manifest.spec!
  switch (path) {
    case 'metadata.name':
      return pod.name
    case 'metadata.namespace':
      return pod.namespace
    case 'metadata.uid':
      return facts.uid
    case 'metadata.labels':
      return formatMap(pod.labels)
    case 'metadata.annotations':
      return formatMap(pod.annotations)
    case 'spec.nodeName':
      return facts.nodeName
    case 'spec.serviceAccountName':
      return spec.serviceAccountName ?? spec.serviceAccount ?? 'default'
    case 'status.podIP':
      return podIPs[0] ?? ''
    case 'status.podIPs':
      return podIPs.join(',')
    case 'status.hostIP':
      return hostIPs[0] ?? ''
    case 'status.hostIPs':
      return hostIPs.join(',')
    default:
      throw new ContainerConfigError(`unsupported fieldRef ${path}`)
  }
}

/** key="value" lines, sorted, as the kubelet writes labels and annotations into downward API files. Pure. */
export const formatMap = (map: Readonly<Record<string, string>>): string =>
  Object.keys(map)
    .sort()
    .map(key => `${key}=${JSON.stringify(map[key])}`)
    .join('\n')

/** The value of a resourceFieldRef (limits.cpu and the like), in units of the divisor, rounded up. Pure. */
export const resourceValue = (
  pod: AdmittedPod,
  facts: NodeFacts,
  containerName: string,
  ref: { resource: string; divisor?: string | number },
): string => {
  const target = pod.containers.find(c => c.spec.name === containerName)
  if (!target) throw new ContainerConfigError(`resourceFieldRef names no container ${containerName}`)
  const { requests, limits } = resourcesOf(target.spec, target.path)
  const [kind, resource] = ref.resource.split('.') as ['limits' | 'requests', 'cpu' | 'memory']
  const capacity = resource === 'cpu' ? facts.cpuCapacity : facts.memoryCapacity
  // An unset limit reads as the node's allocatable; an unset request as 0 (the kubelet's defaults).
  const amount = (kind === 'limits' ? limits : requests)[resource] ?? (kind === 'limits' ? capacity : 0)
  const divisor = parseQuantity(ref.divisor ?? 1, 'divisor') || 1
  return String(Math.ceil(amount / divisor))
}

const effectiveSecurity = (pod: AdmittedPod, c: IContainer): ISecurityContext & IPodSecurityContext => {
  const podSc = pod.manifest.spec!.securityContext ?? {}
  const sc = c.securityContext ?? {}
  return {
    ...podSc,
    ...sc,
    ...((sc.seccompProfile ?? podSc.seccompProfile) && { seccompProfile: sc.seccompProfile ?? podSc.seccompProfile }),
  }
}

/** A burstable container's oom_score_adj: 1000 - 1000 * request / capacity, within [3, 999] (kubelet's qos policy). */
const oomScoreAdj = (qos: Qos, memoryRequest: number, capacity: number): number => {
  if (qos === 'Guaranteed') return -997
  if (qos === 'BestEffort') return 1000
  const adj = 1000 - Math.floor((1000 * memoryRequest) / capacity)
  return Math.min(Math.max(adj, 3), 999)
}

const linuxResources = (pod: AdmittedPod, spec: ContainerSpec, facts: NodeFacts): LinuxContainerResources => {
  const { requests, limits } = resourcesOf(spec.spec, spec.path)
  const period = 100_000
  const millis = (cores: number) => Math.ceil(cores * 1000)
  return {
    cpu_period: limits.cpu === undefined ? 0 : period,
    cpu_quota: limits.cpu === undefined ? 0 : Math.max(1000, Math.floor((millis(limits.cpu) * period) / 1000)),
    // kubelet's MilliCPUToShares: 1024 per core, at least 2.
    cpu_shares: Math.max(2, Math.floor((millis(requests.cpu ?? 0) * 1024) / 1000)),
    memory_limit_in_bytes: Math.floor(limits.memory ?? 0),
    oom_score_adj: oomScoreAdj(qosOf(pod), requests.memory ?? 0, facts.memoryCapacity),
  }
}

const envOf = (pod: AdmittedPod, spec: ContainerSpec, facts: NodeFacts, cf: ContainerFacts): Map<string, string> => {
  const env = new Map<string, string>()
  const source = (kind: 'configMap' | 'secret', name: string, optional: boolean | undefined): Readonly<Record<string, string>> | undefined => {
    const data = (kind === 'configMap' ? cf.configMaps : cf.secrets)[name]
    if (!data && !optional) throw new ContainerConfigError(`${kind} "${name}" not found`)
    return data
  }
  for (const from of spec.spec.envFrom ?? []) {
    const data = from.configMapRef
      ? source('configMap', from.configMapRef.name ?? '', from.configMapRef.optional)
      : source('secret', from.secretRef?.name ?? '', from.secretRef?.optional)
    for (const [key, value] of Object.entries(data ?? {})) env.set(`${from.prefix ?? ''}${key}`, value)
  }
  const lookup = (name: string) => env.get(name)
  for (const variable of spec.spec.env ?? []) env.set(variable.name, envValue(pod, spec, facts, cf, variable, lookup, source))
  return env
}

const envValue = (
  pod: AdmittedPod,
  spec: ContainerSpec,
  facts: NodeFacts,
  cf: ContainerFacts,
  variable: IEnvVar,
  lookup: (name: string) => string | undefined,
  source: (kind: 'configMap' | 'secret', name: string, optional: boolean | undefined) => Readonly<Record<string, string>> | undefined,
): string => {
  const from = variable.valueFrom
  if (!from) return expandVars(variable.value ?? '', lookup)
  if (from.fieldRef) return fieldValue(pod, facts, cf.podIPs, cf.hostIPs, from.fieldRef.fieldPath)
  if (from.resourceFieldRef) {
    const ref = from.resourceFieldRef
    return resourceValue(pod, facts, ref.containerName || spec.spec.name, {
      resource: ref.resource,
      ...(ref.divisor !== undefined && { divisor: ref.divisor }),
    })
  }
  const keyRef = from.configMapKeyRef ?? from.secretKeyRef
  if (keyRef) {
    const kind = from.configMapKeyRef ? 'configMap' : 'secret'
    const value = source(kind, keyRef.name ?? '', keyRef.optional)?.[keyRef.key]
    if (value === undefined && !keyRef.optional) throw new ContainerConfigError(`couldn't find key ${keyRef.key} in ${kind} "${keyRef.name}"`)
    return value ?? ''
  }
  throw new ContainerConfigError(`env ${variable.name}: unsupported valueFrom ${JSON.stringify(from)}`)
}

/** The user the container will run as, and whether runAsNonRoot allows it (kubelet's verifyRunAsNonRoot). */
const verifyNonRoot = (pod: AdmittedPod, spec: ContainerSpec, sc: ISecurityContext & IPodSecurityContext, cf: ContainerFacts): void => {
  if (sc.runAsNonRoot !== true) return
  const where = `(pod: "${pod.name}_${pod.namespace}", container: ${spec.spec.name})`
  if (sc.runAsUser !== undefined) {
    if (sc.runAsUser === 0) throw new ContainerConfigError(`container's runAsUser breaks non-root policy ${where}`)
    return
  }
  // An image that names no user runs as root.
  if (cf.imageUser.uid === undefined && cf.imageUser.username !== '')
    throw new ContainerConfigError(
      `container has runAsNonRoot and image has non-numeric user (${cf.imageUser.username}), cannot verify user is non-root ${where}`,
    )
  if ((cf.imageUser.uid ?? 0) === 0) throw new ContainerConfigError(`container has runAsNonRoot and image will run as root ${where}`)
}

const volumeMounts = (spec: ContainerSpec, cf: ContainerFacts): Mount[] => {
  const mounts: Mount[] = (spec.spec.volumeMounts ?? []).map(m => ({
    container_path: m.mountPath,
    host_path: m.subPath ? `${cf.volumes[m.name]}/${m.subPath}` : cf.volumes[m.name]!,
    readonly: m.readOnly === true,
    propagation: 'PROPAGATION_PRIVATE' as const,
  }))
  if (cf.hostsFile && !mounts.some(m => m.container_path === '/etc/hosts')) {
    mounts.push({ container_path: '/etc/hosts', host_path: cf.hostsFile, readonly: false, propagation: 'PROPAGATION_PRIVATE' })
  }
  mounts.push({
    container_path: spec.spec.terminationMessagePath ?? '/dev/termination-log',
    host_path: cf.terminationMessageFile,
    readonly: false,
    propagation: 'PROPAGATION_PRIVATE',
  })
  return mounts
}

/**
 * containerConfig is the CreateContainer config the kubelet builds for one container. Pure; throws
 * ContainerConfigError where the kubelet would report CreateContainerConfigError (runAsNonRoot broken, a missing
 * ConfigMap key).
 */
export const containerConfig = (pod: AdmittedPod, spec: ContainerSpec, facts: NodeFacts, cf: ContainerFacts): ContainerConfig => {
  const c = spec.spec
  const sc = effectiveSecurity(pod, c)
  verifyNonRoot(pod, spec, sc, cf)
  const env = envOf(pod, spec, facts, cf)
  const lookup = (name: string) => env.get(name)
  const privileged = sc.privileged === true
  // The image's own user when the spec names none (kubelet: a uid, else the name, for the runtime to resolve).
  const user =
    sc.runAsUser !== undefined
      ? { run_as_user: { value: sc.runAsUser } }
      : cf.imageUser.uid !== undefined
        ? { run_as_user: { value: cf.imageUser.uid } }
        : cf.imageUser.username
          ? { run_as_username: cf.imageUser.username }
          : {}
  return {
    metadata: { name: c.name, attempt: 0 },
    image: { image: c.image ?? '' },
    command: (c.command ?? []).map(arg => expandVars(arg, lookup)),
    args: (c.args ?? []).map(arg => expandVars(arg, lookup)),
    working_dir: c.workingDir ?? '',
    envs: [...env].map(([key, value]) => ({ key, value })),
    mounts: volumeMounts(spec, cf),
    labels: { ...podLabels(pod, facts.uid), 'io.kubernetes.container.name': c.name },
    annotations: {
      'io.kubernetes.container.restartCount': '0',
      'io.kubernetes.container.terminationMessagePath': c.terminationMessagePath ?? '/dev/termination-log',
      'io.kubernetes.container.terminationMessagePolicy': c.terminationMessagePolicy ?? 'File',
      'io.kubernetes.pod.terminationGracePeriod': String(pod.terminationGracePeriodSeconds),
    },
    log_path: `${c.name}/0.log`,
    stdin: c.stdin === true,
    stdin_once: c.stdinOnce === true,
    tty: c.tty === true,
    linux: {
      resources: linuxResources(pod, spec, facts),
      security_context: {
        capabilities: { add_capabilities: [...(sc.capabilities?.add ?? [])], drop_capabilities: [...(sc.capabilities?.drop ?? [])] },
        privileged,
        namespace_options: namespacesOf(pod),
        ...user,
        ...(sc.runAsGroup !== undefined && { run_as_group: { value: sc.runAsGroup } }),
        readonly_rootfs: sc.readOnlyRootFilesystem === true,
        supplemental_groups: supplementalGroups(pod.manifest.spec!.securityContext ?? {}),
        // Only an explicit allowPrivilegeEscalation: false sets it (kubelet's AddNoNewPrivileges).
        no_new_privs: sc.allowPrivilegeEscalation === false,
        masked_paths: privileged ? [] : MASKED_PATHS,
        readonly_paths: privileged ? [] : READONLY_PATHS,
        seccomp: privileged ? { profile_type: 'Unconfined' } : seccompOf(sc.seccompProfile),
      },
    },
  }
}

// --- Volumes, probes, hooks --------------------------------------------------------------------------------------

/** One file the runner writes for a volume, relative to the volume's directory. */
export interface VolumeFile {
  readonly path: string
  readonly content: string
  readonly mode: number
}

/** A volume as the runner makes it: a directory, and for the projected kinds, the files in it. */
export interface VolumePlan {
  readonly name: string
  readonly kind: 'emptyDir' | 'files'
  readonly files: readonly VolumeFile[]
}

/**
 * volumePlans lists the pod's volumes and their files (downward API, ConfigMap, Secret, and projections of them).
 * emptyDir with medium Memory is a plain directory here. Pure; throws ContainerConfigError for missing data.
 */
export const volumePlans = (pod: AdmittedPod, facts: NodeFacts, data: Pick<ContainerFacts, 'configMaps' | 'secrets'>): VolumePlan[] => {
  const fromData = (
    kind: 'configMap' | 'secret',
    name: string,
    items: readonly { key: string; path: string; mode?: number }[] | undefined,
    optional: boolean | undefined,
    mode: number,
  ): VolumeFile[] => {
    const found = (kind === 'configMap' ? data.configMaps : data.secrets)[name]
    if (!found) {
      if (optional) return []
      throw new ContainerConfigError(`${kind} "${name}" not found`)
    }
    const listed: readonly { key: string; path: string; mode?: number }[] = items ?? Object.keys(found).map(key => ({ key, path: key }))
    return listed.map(item => {
      const content = found[item.key]
      if (content === undefined) throw new ContainerConfigError(`${kind} "${name}" has no key ${item.key}`)
      return { path: item.path, content, mode: item.mode ?? mode }
    })
  }
  const downward = (
    items: readonly {
      path: string
      fieldRef?: { fieldPath: string }
      resourceFieldRef?: { containerName?: string; resource: string; divisor?: string | number }
      mode?: number
    }[],
    mode: number,
  ): VolumeFile[] =>
    items.map(item => ({
      path: item.path,
      mode: item.mode ?? mode,
      content: item.fieldRef
        ? fieldValue(pod, facts, [], [], item.fieldRef.fieldPath)
        : resourceValue(pod, facts, item.resourceFieldRef?.containerName ?? '', item.resourceFieldRef ?? { resource: '' }),
    }))
  return (pod.manifest.spec!.volumes ?? []).map((volume: IVolume): VolumePlan => {
    if (volume.emptyDir) return { name: volume.name, kind: 'emptyDir', files: [] }
    if (volume.downwardAPI)
      return { name: volume.name, kind: 'files', files: downward(volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644) }
    if (volume.configMap) {
      const v = volume.configMap
      return { name: volume.name, kind: 'files', files: fromData('configMap', v.name ?? '', v.items, v.optional, v.defaultMode ?? 0o644) }
    }
    if (volume.secret) {
      const v = volume.secret
      return { name: volume.name, kind: 'files', files: fromData('secret', v.secretName ?? '', v.items, v.optional, v.defaultMode ?? 0o644) }
    }
    const mode = volume.projected?.defaultMode ?? 0o644
    return {
      name: volume.name,
      kind: 'files',
      files: (volume.projected?.sources ?? []).flatMap(source =>
        source.downwardAPI
          ? downward(source.downwardAPI.items ?? [], mode)
          : source.configMap
            ? fromData('configMap', source.configMap.name ?? '', source.configMap.items, source.configMap.optional, mode)
            : fromData('secret', source.secret?.name ?? '', source.secret?.items, source.secret?.optional, mode),
      ),
    }
  })
}

/** A startup probe with the API server's defaults filled in. */
export interface StartupProbe {
  readonly action:
    | { exec: readonly string[] }
    | { tcp: { host?: string; port: number } }
    | { http: { host?: string; port: number; path: string; headers: Record<string, string> } }
  readonly initialDelaySeconds: number
  readonly periodSeconds: number
  readonly timeoutSeconds: number
  readonly failureThreshold: number
}

/** A lifecycle hook, ready to run. */
export type Hook =
  | { exec: readonly string[] }
  | { http: { host?: string; port: number; path: string; headers: Record<string, string> } }
  | { sleepSeconds: number }

const portOf = (c: IContainer, port: number | string, path: string): number => {
  if (typeof port === 'number') return port
  const named = (c.ports ?? []).find(p => p.name === port)
  if (!named) throw new ManifestError(path, `no container port named ${port}`)
  return named.containerPort
}

const httpAction = (c: IContainer, http: NonNullable<IProbe['httpGet']>, path: string) => ({
  ...(http.host !== undefined && { host: http.host }),
  port: portOf(c, http.port, `${path}.httpGet.port`),
  path: http.path ?? '/',
  headers: Object.fromEntries((http.httpHeaders ?? []).map(h => [h.name, h.value])),
})

/** The container's startup probe, defaulted (period 10 s, timeout 1 s, failure threshold 3), or undefined. Pure. */
export const startupProbeOf = (spec: ContainerSpec): StartupProbe | undefined => {
  const probe = spec.spec.startupProbe
  if (!probe) return undefined
  const path = `${spec.path}.startupProbe`
  const action = probe.exec
    ? { exec: probe.exec.command ?? [] }
    : probe.tcpSocket
      ? {
          tcp: {
            ...(probe.tcpSocket.host !== undefined && { host: probe.tcpSocket.host }),
            port: portOf(spec.spec, probe.tcpSocket.port, `${path}.tcpSocket.port`),
          },
        }
      : { http: httpAction(spec.spec, probe.httpGet!, path) }
  return {
    action,
    initialDelaySeconds: probe.initialDelaySeconds ?? 0,
    periodSeconds: probe.periodSeconds ?? 10,
    timeoutSeconds: probe.timeoutSeconds ?? 1,
    failureThreshold: probe.failureThreshold ?? 3,
  }
}

/** The container's postStart or preStop hook, or undefined. Pure. */
export const hookOf = (spec: ContainerSpec, which: 'postStart' | 'preStop'): Hook | undefined => {
  const handler = spec.spec.lifecycle?.[which]
  if (!handler) return undefined
  if (handler.exec) return { exec: handler.exec.command ?? [] }
  if (handler.sleep) return { sleepSeconds: handler.sleep.seconds }
  return { http: httpAction(spec.spec, handler.httpGet!, `${spec.path}.lifecycle.${which}`) }
}

/** The kubelet's managed /etc/hosts for a pod off the host network. Pure. */
export const hostsFile = (pod: AdmittedPod, facts: NodeFacts, podIPs: readonly string[]): string => {
  const hostname = hostnameOf(pod, facts)
  const lines = [
    '# Kubernetes-managed hosts file.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    ...podIPs.map(ip => `${ip}\t${hostname}`),
  ]
  const aliases = pod.manifest.spec!.hostAliases ?? []
  if (aliases.length > 0) {
    lines.push('', '# Entries added by HostAliases.')
    for (const alias of aliases) lines.push(`${alias.ip}\t${(alias.hostnames ?? []).join('\t')}`)
  }
  return `${lines.join('\n')}\n`
}
