// The plugin's entry in a .conflist, and what it decides for one pod. Pure: the settings object and the pod's
// annotations become the same ISTIO_* environment an init container would get, which src/settings then validates
// exactly as it validates the env, so a setting cannot mean one thing here and another there. The trust boundary
// is drawn here: settings are the operator's, annotations a tenant's, and an annotation counts only where the
// option table lets a pod set it and the operator's allowedAnnotations names it. `validate` decides with this same
// function inside the pod, so the gate and the node agree on what was applied.

import { parseCidr } from '../settings/cidr.js'
import { allowableAnnotations, CAPTURE_ANNOTATION_NAME, OPTIONS } from '../settings/options.js'
import { CNI_CODES, CniError } from './result.js'

export const SUPPORTED_VERSIONS = ['1.0.0', '1.1.0'] as const

export const ANNOTATION_PREFIX = 'sidecar-redirect.io/'
/** The allow-list's name for `sidecar-redirect.io/capture: disabled` under captureAll (enabled is always taken). */
const CAPTURE_NAME = CAPTURE_ANNOTATION_NAME
const CAPTURE_ANNOTATION = `${ANNOTATION_PREFIX}${CAPTURE_NAME}`
export const ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations'
export const DNS_CAPABILITY = 'dns'

// Every value ends up in the environment of a process the agent starts, where Linux refuses one string over 128 KiB
// and all of them over ARG_MAX (E2BIG): a pod that could get there would fail every ADD and DEL. Far below both.
export const MAX_VALUE_BYTES = 32 * 1024
export const MAX_ENV_BYTES = 96 * 1024
// glibc uses three; Kubernetes' dnsConfig allows three. Room for more, but bounded.
export const MAX_NAMESERVERS = 16

export interface NetConf {
  readonly cniVersion: string
  readonly settings: Readonly<Record<string, string>>
  readonly captureAll: boolean
  readonly excludeNamespaces: readonly string[]
  /** The annotation names (flag names, or `capture`) a pod may set; empty by default. */
  readonly allowedAnnotations: readonly string[]
  readonly annotations: Readonly<Record<string, string>>
  /** The runtime's dns.servers (the `dns` capability), when it passed any. */
  readonly nameservers: readonly string[] | undefined
  /** Absent when ours is the first plugin of the list (nothing to pass on). */
  readonly prevResult?: unknown
}

const SPECS = Object.values(OPTIONS)
const ENV_NAMES = new Set(SPECS.map(spec => spec.env))
const BY_FLAG = new Map(SPECS.map(spec => [spec.flag, spec]))
const ALLOWABLE = allowableAnnotations()
// CNI mode never reads a resolv.conf: the nameservers come from the runtime (the dns capability) or nowhere.
const NOT_IN_CNI = new Set([OPTIONS.resolvConf.env, OPTIONS.dnsServers.env])

const invalid = (message: string): CniError => new CniError(CNI_CODES.invalidConfig, message)

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** A name from the request for a message: a tenant's key may be long, and the message goes into pod events. */
const quoteName = (name: string): string =>
  /^[\w./-]{1,100}$/.test(name) ? name : JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}...` : name)

/** A value from the request, always quoted, and cut short: the message goes into pod events. */
const quoteValue = (value: string): string => JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}...` : value)

const bytes = (text: string): number => Buffer.byteLength(text)

/** What an environment costs a process's exec: NAME=value and its NUL, each. */
const envBytes = (env: Readonly<Record<string, string>>): number =>
  Object.entries(env).reduce((sum, [name, value]) => sum + bytes(name) + bytes(value) + 2, 0)

const stringRecord = (value: unknown, where: string): Record<string, string> => {
  if (value === undefined) return {}
  if (!isRecord(value)) throw invalid(`${where} must be an object of strings`)
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw invalid(`${where}.${quoteName(key)} must be a string, as an environment variable is`)
  }
  return value as Record<string, string>
}

const stringList = (value: unknown, where: string): string[] => {
  if (!Array.isArray(value) || !value.every(n => typeof n === 'string')) throw invalid(`${where} must be a list of strings`)
  return value
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

const refuseSettings = (env: Record<string, string>): void => {
  const unknown = Object.keys(env).find(name => !ENV_NAMES.has(name))
  if (unknown !== undefined)
    throw invalid(`settings.${quoteName(unknown)} is not a setting: expected ISTIO_* variables of the settings table (e.g. ISTIO_PROXY_PORT)`)
  const cniOnly = Object.keys(env).find(name => NOT_IN_CNI.has(name))
  if (cniOnly !== undefined)
    throw invalid(
      `settings.${cniOnly} is not used in CNI mode: ISTIO_DNS_CAPTURE=resolv-conf captures the nameservers the runtime passes (the dns capability), never a file on the node`,
    )
  const large = Object.entries(env).find(([, value]) => bytes(value) > MAX_VALUE_BYTES)
  if (large !== undefined) throw invalid(`settings.${large[0]} is ${bytes(large[1])} bytes, over the ${MAX_VALUE_BYTES}-byte limit of one value`)
  const total = envBytes(env)
  if (total > MAX_ENV_BYTES) throw invalid(`settings come to ${total} bytes, over the ${MAX_ENV_BYTES}-byte limit of them all`)
}

const parseAllowed = (value: unknown): string[] => {
  const names = stringList(value ?? [], 'allowedAnnotations')
  for (const name of names) {
    if (ALLOWABLE.includes(name)) continue
    const spec = BY_FLAG.get(name)
    throw invalid(
      spec !== undefined
        ? `allowedAnnotations names ${name}, which only the operator's settings may set (${spec.env} names a node path or decides how the node agent runs)`
        : `allowedAnnotations names ${quoteName(name)}, which is not an annotation of ours: expected some of ${ALLOWABLE.join(', ')}`,
    )
  }
  return names
}

const parseNameserverList = (dns: unknown): string[] | undefined => {
  if (dns === undefined) return undefined
  const where = `runtimeConfig.${DNS_CAPABILITY}`
  if (!isRecord(dns)) throw invalid(`${where} must be an object`)
  // The CNI conventions' dns capability: {servers, searches, options}, as kubelet, CRI-O and containerd pass the pod's
  // DNS config; the nameservers are `servers` (the result's dns has `nameservers`, this does not). containerd's go-cni
  // marshals a struct without JSON tags, so its key is `Servers`: Go plugins read it because Go's decoder matches
  // keys case-insensitively, and so does this.
  const key = Object.keys(dns).find(k => k.toLowerCase() === 'servers')
  if (key === undefined) return undefined
  const list = stringList(dns[key], `${where}.servers`)
  if (list.length > MAX_NAMESERVERS) throw invalid(`${where}.servers lists ${list.length}, more than ${MAX_NAMESERVERS}`)
  for (const [i, address] of list.entries()) {
    if (address.includes('/') || parseCidr(address) === undefined)
      throw invalid(`${where}.servers[${i}]=${quoteValue(address)} is not an IPv4 or IPv6 address (without a zone)`)
  }
  return list
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
  const { cniVersion, settings, captureAll = false, excludeNamespaces = ['kube-system'], allowedAnnotations, runtimeConfig, prevResult } = value
  if (typeof cniVersion !== 'string' || !(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(
      CNI_CODES.incompatibleVersion,
      `cniVersion ${JSON.stringify(cniVersion)} is not supported: expected one of ${SUPPORTED_VERSIONS.join(', ')}`,
    )
  }
  const env = stringRecord(settings, 'settings')
  refuseSettings(env)
  if (typeof captureAll !== 'boolean') throw invalid(`captureAll must be true or false, not ${JSON.stringify(captureAll)}`)
  if (!Array.isArray(excludeNamespaces) || !excludeNamespaces.every(n => typeof n === 'string')) {
    throw invalid(`excludeNamespaces must be a list of namespace names, not ${JSON.stringify(excludeNamespaces)}`)
  }
  const runtime = isRecord(runtimeConfig) ? runtimeConfig : {}
  return {
    cniVersion,
    settings: env,
    captureAll,
    excludeNamespaces,
    allowedAnnotations: parseAllowed(allowedAnnotations),
    annotations: stringRecord(runtime[ANNOTATIONS_CAPABILITY], `runtimeConfig.${ANNOTATIONS_CAPABILITY}`),
    nameservers: parseNameserverList(runtime[DNS_CAPABILITY]),
    ...(prevResult !== undefined && { prevResult }),
  }
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

const allowedList = (conf: NetConf): string => (conf.allowedAnnotations.length === 0 ? 'none' : conf.allowedAnnotations.join(', '))

/** The setting one of our annotations sets, once it has passed the trust boundary; throws CniError 7. */
const annotatedSetting = (conf: NetConf, key: string, value: string): string => {
  const flag = key.slice(ANNOTATION_PREFIX.length)
  // Before anything else, and without quoting it: the value is a tenant's, and may be huge.
  if (bytes(value) > MAX_VALUE_BYTES)
    throw invalid(`annotation ${quoteName(key)} is ${bytes(value)} bytes, over the ${MAX_VALUE_BYTES}-byte limit of one value; nothing was applied`)
  const spec = BY_FLAG.get(flag)
  if (spec === undefined)
    throw invalid(
      `annotation ${quoteName(key)} names no setting: expected ${ANNOTATION_PREFIX}capture or ${ANNOTATION_PREFIX}<flag-name> (e.g. ${ANNOTATION_PREFIX}outbound-exclude-ports)`,
    )
  if (spec.trust === 'operator')
    throw invalid(
      `annotation ${key} is refused: ${spec.env} names a node path or decides how the node agent runs, so only the operator's settings set it; nothing was applied`,
    )
  if (!conf.allowedAnnotations.includes(flag))
    throw invalid(
      `annotation ${key} is refused: the operator's allowedAnnotations does not name ${flag} (it names ${allowedList(conf)}); nothing was applied`,
    )
  return spec.env
}

/**
 * decidePod says whether the pod is captured and, if it is, with which ISTIO_* environment: the config's settings,
 * then one variable per allowed `sidecar-redirect.io/<flag-name>` annotation, then, for resolv-conf DNS capture, the
 * runtime's nameservers. An excluded namespace is never captured, even when annotated. Anything refused refuses the
 * whole pod: nothing is applied in part. `sources` names where each variable came from, for error messages.
 * Pure; throws CniError 7.
 */
export const decidePod = (conf: NetConf, cniArgs: string): PodDecision => {
  const namespace = podNamespace(cniArgs)
  if (namespace !== undefined && conf.excludeNamespaces.includes(namespace))
    return { captured: false, reason: `namespace ${namespace} is in excludeNamespaces` }
  const capture = conf.annotations[CAPTURE_ANNOTATION]
  if (capture !== undefined && capture !== 'enabled' && capture !== 'disabled') {
    throw invalid(`annotation ${CAPTURE_ANNOTATION}=${quoteValue(capture)} is not valid: expected enabled or disabled`)
  }
  // Opting in only adds capture; opting out of captureAll takes the operator's word.
  if (capture === 'disabled' && conf.captureAll && !conf.allowedAnnotations.includes(CAPTURE_NAME))
    throw invalid(
      `annotation ${CAPTURE_ANNOTATION}=disabled is refused: captureAll is true and the operator's allowedAnnotations does not name capture (it names ${allowedList(conf)})`,
    )
  const captured = capture === undefined ? conf.captureAll : capture === 'enabled'
  const why = capture === undefined ? `captureAll is ${conf.captureAll}` : `annotation ${CAPTURE_ANNOTATION}=${capture}`
  if (!captured) return { captured: false, reason: why }
  const env: Record<string, string> = { ...conf.settings }
  const sources = new Map(Object.keys(conf.settings).map(name => [name, `settings.${name}`]))
  for (const [key, value] of Object.entries(conf.annotations)) {
    if (!key.startsWith(ANNOTATION_PREFIX) || key === CAPTURE_ANNOTATION) continue
    const name = annotatedSetting(conf, key, value)
    env[name] = value
    sources.set(name, `annotation ${key}`)
  }
  if ((env[OPTIONS.dnsCapture.env] ?? OPTIONS.dnsCapture.default).trim() === 'resolv-conf') {
    if (conf.nameservers === undefined || conf.nameservers.length === 0)
      throw invalid(
        `${sources.get(OPTIONS.dnsCapture.env)}=resolv-conf needs the nameservers the runtime passes in runtimeConfig.dns.servers (the dns capability), and this request has none; the node's resolv.conf is never read`,
      )
    env[OPTIONS.dnsServers.env] = conf.nameservers.join(',')
    sources.set(OPTIONS.dnsServers.env, `runtimeConfig.${DNS_CAPABILITY}.servers`)
  }
  const total = envBytes(env)
  if (total > MAX_ENV_BYTES)
    throw invalid(`the settings and annotations come to ${total} bytes, over the ${MAX_ENV_BYTES}-byte limit; nothing was applied`)
  return { captured: true, reason: why, env, sources }
}
