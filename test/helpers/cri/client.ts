// A CRI v1 client over a runtime's unix socket: @grpc/grpc-js with the messages of api.proto (a hand-written
// subset), one promise per call. Field names stay as the proto spells them (keepCase), so a request reads like
// the CRI reference and like crictl's JSON. 64-bit integers arrive as strings (nanosecond times exceed 2^53).

import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'

const PROTO = new URL('./api.proto', import.meta.url).pathname

/** One CRI call failed: the method, gRPC's status code and the runtime's own message. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`CRI ${method} failed (gRPC code ${code}): ${details}`)
  }
}

/** gRPC status 5: what containerd answers for an id it does not know (already removed included). */
export const isNotFound = (error: unknown): boolean => error instanceof CriError && error.code === 5

// --- The messages the runner sends and reads, as proto-loader hands them over (keepCase, longs as strings). -----

export type Int64 = string | number
export interface KeyValue {
  key: string
  value: string
}
export interface Mount {
  container_path: string
  host_path: string
  readonly?: boolean
  propagation?: 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL'
}
export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE'
export interface NamespaceOption {
  network: NamespaceMode
  pid: NamespaceMode
  ipc: NamespaceMode
}
export interface SecurityProfile {
  profile_type: 'RuntimeDefault' | 'Unconfined' | 'Localhost'
  localhost_ref?: string
}
export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt: number }
  hostname: string
  log_directory: string
  dns_config?: { servers: string[]; searches: string[]; options: string[] }
  port_mappings: { protocol: 'TCP' | 'UDP' | 'SCTP'; container_port: number; host_port: number; host_ip: string }[]
  labels: Record<string, string>
  annotations: Record<string, string>
  linux: {
    cgroup_parent: string
    security_context: {
      namespace_options: NamespaceOption
      run_as_user?: { value: number }
      run_as_group?: { value: number }
      supplemental_groups: number[]
      readonly_rootfs?: boolean
      privileged: boolean
      seccomp: SecurityProfile
    }
    sysctls: Record<string, string>
  }
}
export interface LinuxContainerSecurityContext {
  capabilities: { add_capabilities: string[]; drop_capabilities: string[] }
  privileged: boolean
  namespace_options: NamespaceOption
  run_as_user?: { value: number }
  run_as_username?: string
  run_as_group?: { value: number }
  readonly_rootfs: boolean
  supplemental_groups: number[]
  no_new_privs: boolean
  masked_paths: string[]
  readonly_paths: string[]
  seccomp: SecurityProfile
}
export interface LinuxContainerResources {
  cpu_period: number
  cpu_quota: number
  cpu_shares: number
  memory_limit_in_bytes: number
  oom_score_adj: number
}
export interface ContainerConfig {
  metadata: { name: string; attempt: number }
  image: { image: string }
  command: string[]
  args: string[]
  working_dir: string
  envs: KeyValue[]
  mounts: Mount[]
  labels: Record<string, string>
  annotations: Record<string, string>
  log_path: string
  stdin: boolean
  stdin_once: boolean
  tty: boolean
  linux: { resources: LinuxContainerResources; security_context: LinuxContainerSecurityContext }
}
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN'
export interface ContainerStatus {
  id: string
  metadata: { name: string; attempt: number }
  state: ContainerState
  created_at: Int64
  started_at: Int64
  finished_at: Int64
  exit_code: number
  reason: string
  message: string
  log_path: string
}
export interface PodSandboxStatus {
  id: string
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY'
  network?: { ip: string; additional_ips: { ip: string }[] }
  annotations: Record<string, string>
  labels: Record<string, string>
}

/** The CRI calls the runner makes; each rejects with a CriError. */
export interface Cri {
  version(): Promise<{ runtime_name: string; runtime_version: string; runtime_api_version: string }>
  runPodSandbox(config: PodSandboxConfig): Promise<string>
  stopPodSandbox(id: string): Promise<void>
  removePodSandbox(id: string): Promise<void>
  /** With containerd's verbose info parsed: the sandbox's pid among it. */
  podSandboxStatus(id: string): Promise<{ status: PodSandboxStatus; info: { pid?: number } }>
  listPodSandbox(labels?: Record<string, string>): Promise<{ id: string; labels: Record<string, string> }[]>
  createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string>
  startContainer(id: string): Promise<void>
  /** Sends the stop signal, and SIGKILL after `timeoutSeconds`; resolves once the container has exited. */
  stopContainer(id: string, timeoutSeconds: number): Promise<void>
  removeContainer(id: string): Promise<void>
  listContainers(sandboxId: string): Promise<{ id: string; metadata: { name: string }; state: ContainerState }[]>
  /** With containerd's verbose info parsed: the pid and the OCI runtime spec it handed runc. */
  containerStatus(id: string): Promise<{ status: ContainerStatus; info: ContainerInfo }>
  execSync(id: string, cmd: readonly string[], timeoutSeconds: number): Promise<{ exitCode: number; stdout: string; stderr: string }>
  /** The image's user as the runtime reads it (uid, or a name), or undefined when the runtime has no such image. */
  imageStatus(image: string): Promise<{ uid?: number; username: string } | undefined>
  close(): void
}

/** What containerd's verbose ContainerStatus info holds that the runner reads. */
export interface ContainerInfo {
  pid?: number
  runtimeSpec?: {
    process?: {
      user?: { uid: number; gid: number; additionalGids?: number[] }
      capabilities?: Partial<Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>>
      noNewPrivileges?: boolean
      oomScoreAdj?: number
    }
    root?: { readonly?: boolean }
    linux?: { seccomp?: unknown; maskedPaths?: string[]; readonlyPaths?: string[] }
  }
}

type Unary = (request: unknown, callback: (error: ServiceError | null, response: any) => void) => void

const parseInfo = <T>(info: Record<string, string> | undefined): T => {
  const text = info?.['info']
  return (text ? JSON.parse(text) : {}) as T
}

/** connectCri opens a CRI client on a runtime's unix socket. I/O happens on each call, not here. */
export const connectCri = (socket: string): Cri => {
  const definition = loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, arrays: true, objects: false })
  const runtime = (loadPackageDefinition(definition) as any).runtime.v1
  const address = `unix://${socket}`
  const clients: Client[] = [
    new runtime.RuntimeService(address, credentials.createInsecure()),
    new runtime.ImageService(address, credentials.createInsecure()),
  ]
  const [runtimeService, imageService] = clients as [any, any]
  const call = (service: any, method: string, request: unknown): Promise<any> =>
    new Promise((resolve, reject) =>
      (service[method] as Unary).call(service, request, (error, response) =>
        error ? reject(new CriError(method, error.code, error.details)) : resolve(response),
      ),
    )
  const rt = (method: string, request: unknown) => call(runtimeService, method, request)
  return {
    version: () => rt('Version', { version: 'v1' }),
    runPodSandbox: async config => (await rt('RunPodSandbox', { config })).pod_sandbox_id,
    stopPodSandbox: async id => void (await rt('StopPodSandbox', { pod_sandbox_id: id })),
    removePodSandbox: async id => void (await rt('RemovePodSandbox', { pod_sandbox_id: id })),
    podSandboxStatus: async id => {
      const response = await rt('PodSandboxStatus', { pod_sandbox_id: id, verbose: true })
      return { status: response.status, info: parseInfo(response.info) }
    },
    listPodSandbox: async (labels = {}) => (await rt('ListPodSandbox', { filter: { label_selector: labels } })).items,
    createContainer: async (sandboxId, config, sandboxConfig) =>
      (await rt('CreateContainer', { pod_sandbox_id: sandboxId, config, sandbox_config: sandboxConfig })).container_id,
    startContainer: async id => void (await rt('StartContainer', { container_id: id })),
    stopContainer: async (id, timeoutSeconds) => void (await rt('StopContainer', { container_id: id, timeout: timeoutSeconds })),
    removeContainer: async id => void (await rt('RemoveContainer', { container_id: id })),
    listContainers: async sandboxId => (await rt('ListContainers', { filter: { pod_sandbox_id: sandboxId } })).containers,
    containerStatus: async id => {
      const response = await rt('ContainerStatus', { container_id: id, verbose: true })
      return { status: response.status, info: parseInfo(response.info) }
    },
    execSync: async (id, cmd, timeoutSeconds) => {
      const response = await rt('ExecSync', { container_id: id, cmd, timeout: timeoutSeconds })
      return { exitCode: response.exit_code, stdout: Buffer.from(response.stdout).toString(), stderr: Buffer.from(response.stderr).toString() }
    },
    imageStatus: async image => {
      const response = await call(imageService, 'ImageStatus', { image: { image } })
      const found = response.image
      if (!found) return undefined
      return { ...(found.uid && { uid: Number(found.uid.value) }), username: found.username }
    },
    close: () => {
      for (const client of clients) client.close()
    },
  }
}
