// The plugin's entry in a .conflist, and what it decides for one pod. Pure: the settings object and the pod's
// annotations become the same ISTIO_* environment an init container would get, which src/settings then validates
// exactly as it validates the env, so a setting cannot mean one thing here and another there.

import { OPTIONS } from '../settings/options.js'
import { CNI_CODES, CniError } from './result.js'

export const SUPPORTED_VERSIONS = ['1.0.0', '1.1.0'] as const

export const ANNOTATION_PREFIX = 'sidecar-redirect.io/'
const CAPTURE_ANNOTATION = `${ANNOTATION_PREFIX}capture`
const ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations'

export interface NetConf {
  readonly cniVersion: string
  readonly settings: Readonly<Record<string, string>>
  readonly captureAll: boolean
  readonly excludeNamespaces: readonly string[]
  readonly annotations: Readonly<Record<string, string>>
  /** Absent when ours is the first plugin of the list (nothing to pass on). */
  readonly prevResult?: unknown
}

const ENV_NAMES = new Set(Object.values(OPTIONS).map(spec => spec.env))
const FLAG_TO_ENV = new Map(Object.values(OPTIONS).map(spec => [spec.flag, spec.env]))

const invalid = (message: string): CniError => new CniError(CNI_CODES.invalidConfig, message)

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

const stringRecord = (value: unknown, where: string): Record<string, string> => {
  if (value === undefined) return {}
  if (!isRecord(value)) throw invalid(`${where} must be an object of strings, not ${JSON.stringify(value)}`)
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw invalid(`${where}.${key} must be a string, as an environment variable is, not ${JSON.stringify(item)}`)
  }
  return value as Record<string, string>
}

/** configVersion is the cniVersion a reply should carry, whatever else is wrong with the config. Pure. */
export const configVersion = (stdin: string): string => {
  try {
    const version = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion
    return typeof version === 'string' ? version : '1.1.0'
  } catch {
    return '1.1.0'
  }
}

/** parseNetConf reads the network config on the plugin's stdin. Pure; throws CniError (6 decoding, 1 version, 7 config). */
export const parseNetConf = (stdin: string): NetConf => {
  let value: unknown
  try {
    value = JSON.parse(stdin)
  } catch (error) {
    throw new CniError(CNI_CODES.decoding, `the network config on stdin is not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (!isRecord(value)) throw new CniError(CNI_CODES.decoding, 'the network config on stdin is not a JSON object')
  const { cniVersion, settings, captureAll = false, excludeNamespaces = ['kube-system'], runtimeConfig, prevResult } = value
  if (typeof cniVersion !== 'string' || !(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(
      CNI_CODES.incompatibleVersion,
      `cniVersion ${JSON.stringify(cniVersion)} is not supported: expected one of ${SUPPORTED_VERSIONS.join(', ')}`,
    )
  }
  const env = stringRecord(settings, 'settings')
  const unknown = Object.keys(env).find(name => !ENV_NAMES.has(name))
  if (unknown !== undefined)
    throw invalid(`settings.${unknown} is not a setting: expected ISTIO_* variables of the settings table (e.g. ISTIO_PROXY_PORT)`)
  if (typeof captureAll !== 'boolean') throw invalid(`captureAll must be true or false, not ${JSON.stringify(captureAll)}`)
  if (!Array.isArray(excludeNamespaces) || !excludeNamespaces.every(n => typeof n === 'string')) {
    throw invalid(`excludeNamespaces must be a list of namespace names, not ${JSON.stringify(excludeNamespaces)}`)
  }
  const annotations = stringRecord(
    isRecord(runtimeConfig) ? runtimeConfig[ANNOTATIONS_CAPABILITY] : undefined,
    `runtimeConfig.${ANNOTATIONS_CAPABILITY}`,
  )
  return { cniVersion, settings: env, captureAll, excludeNamespaces, annotations, ...(prevResult !== undefined && { prevResult }) }
}

/** The pod's namespace, from kubelet's CNI_ARGS (K8S_POD_NAMESPACE=...); undefined when not run by kubelet. Pure. */
export const podNamespace = (cniArgs: string): string | undefined =>
  cniArgs
    .split(';')
    .map(pair => pair.split('='))
    .find(([key]) => key === 'K8S_POD_NAMESPACE')?.[1]

export type PodDecision =
  | { readonly captured: false; readonly reason: string }
  | {
      readonly captured: true
      readonly reason: string
      readonly env: Readonly<Record<string, string>>
      readonly sources: ReadonlyMap<string, string>
    }

/**
 * decidePod says whether the pod is captured and, if it is, with which ISTIO_* environment: the config's settings,
 * then one variable per `sidecar-redirect.io/<flag-name>` annotation. An excluded namespace is never captured, even
 * when annotated. `sources` names where each variable came from, for error messages. Pure; throws CniError 7.
 */
export const decidePod = (conf: NetConf, cniArgs: string): PodDecision => {
  const namespace = podNamespace(cniArgs)
  if (namespace !== undefined && conf.excludeNamespaces.includes(namespace))
    return { captured: false, reason: `namespace ${namespace} is in excludeNamespaces` }
  const capture = conf.annotations[CAPTURE_ANNOTATION]
  if (capture !== undefined && capture !== 'enabled' && capture !== 'disabled') {
    throw invalid(`annotation ${CAPTURE_ANNOTATION}=${JSON.stringify(capture)} is not valid: expected enabled or disabled`)
  }
  const captured = capture === undefined ? conf.captureAll : capture === 'enabled'
  const why = capture === undefined ? `captureAll is ${conf.captureAll}` : `annotation ${CAPTURE_ANNOTATION}=${capture}`
  if (!captured) return { captured: false, reason: why }
  const env: Record<string, string> = { ...conf.settings }
  const sources = new Map(Object.keys(conf.settings).map(name => [name, `settings.${name}`]))
  for (const [key, value] of Object.entries(conf.annotations)) {
    if (!key.startsWith(ANNOTATION_PREFIX) || key === CAPTURE_ANNOTATION) continue
    const flag = key.slice(ANNOTATION_PREFIX.length)
    const name = FLAG_TO_ENV.get(flag)
    if (name === undefined)
      throw invalid(
        `annotation ${key} names no setting: expected ${ANNOTATION_PREFIX}capture or ${ANNOTATION_PREFIX}<flag-name> (e.g. ${ANNOTATION_PREFIX}outbound-exclude-ports)`,
      )
    env[name] = value
    sources.set(name, `annotation ${key}`)
  }
  return { captured: true, reason: why, env, sources }
}
