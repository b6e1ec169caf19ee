// Every failure the tool expects has a class here, and each class owns one exit code, so the exit code table in
// docs/reference.md (checked against this file by test/unit/project/docs.test.ts) and the code cannot drift apart. Codes avoid 126, 127 and 128+N, which shells reserve.

export abstract class SidecarError extends Error {
  abstract readonly code: string
  abstract readonly exitCode: number
  /** Lines printed under the message (a diff, the live checks); most errors have none. */
  readonly details: readonly string[] = []
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A setting was refused. Thrown before any process starts, so the kernel is untouched. */
export class ConfigError extends SidecarError {
  readonly code = 'E_CONFIG'
  readonly exitCode = 2
  constructor(
    readonly variable: string,
    readonly value: string,
    readonly accepted: string,
  ) {
    super(`${variable}=${JSON.stringify(value)} is not valid: expected ${accepted}`)
  }
}

/**
 * A setting that names a file was refused for what the file is or holds (a line, its size, its type, that it is
 * missing). The message quotes the file, so it stays with whoever may read the file: CNI mode keeps it in the node
 * agent's log and answers the runtime with the setting's name only.
 */
export class FileConfigError extends ConfigError {}

/** The command line names a command or flag that does not exist, or a setting is misspelt under ISTIO_STRICT_ENV. */
export class UsageError extends SidecarError {
  readonly code = 'E_CONFIG'
  readonly exitCode = 2
  constructor(message: string) {
    super(message)
  }
}

/** The environment cannot do the job: a tool or kernel feature is missing, or we lack the right. */
export class EnvironmentError extends SidecarError {
  readonly code = 'E_ENVIRONMENT'
  readonly exitCode = 3
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/** The kernel refused a transaction; what was there before is still there. */
export class ApplyError extends SidecarError {
  readonly code = 'E_APPLY'
  readonly exitCode = 4
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/** The rules in the kernel are not the planned ones, or traffic did not go where they say. */
export class VerifyError extends SidecarError {
  readonly code = 'E_VERIFY'
  readonly exitCode = 5
  constructor(
    message: string,
    override readonly details: readonly string[] = [],
  ) {
    super(message)
  }
}

/** The proxy agent could not take away the privileges it must take away before starting the proxy. */
export class PrivilegeError extends SidecarError {
  readonly code = 'E_PRIVILEGE'
  readonly exitCode = 6
  constructor(
    message: string,
    options?: ErrorOptions,
    override readonly details: readonly string[] = [],
  ) {
    super(message, options)
  }
}

/** The node's classifier could not be reached or refused: the proxy is not started unclassified (it would loop). */
export class ClassifierError extends SidecarError {
  readonly code = 'E_CLASSIFIER'
  readonly exitCode = 7
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/** `ready`: nothing accepted a connection on the proxy's port within ISTIO_READY_SECONDS. */
export class NotReadyError extends SidecarError {
  readonly code = 'E_NOT_READY'
  readonly exitCode = 8
  constructor(message: string) {
    super(message)
  }
}

/** `validate` saw a connection of the pod's app identity miss the proxy: capture is not in place. */
export class NotCapturedError extends SidecarError {
  readonly code = 'E_NOT_CAPTURED'
  readonly exitCode = 9
  constructor(
    message: string,
    override readonly details: readonly string[] = [],
  ) {
    super(message)
  }
}

export const isSidecarError = (error: unknown): error is SidecarError => error instanceof SidecarError

/** inject: a workload that must not get a proxy (kube-system, the host's network, an app on the proxy UID...). */
export class RefusedError extends SidecarError {
  readonly code = 'E_REFUSED'
  readonly exitCode = 10
  constructor(
    message: string,
    override readonly details: readonly string[] = [],
  ) {
    super(message)
  }
}
