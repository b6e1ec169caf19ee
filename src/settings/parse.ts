// Settings come from env vars and flags; a flag wins over its env var. Pure: the caller hands in both maps.

import { ConfigError } from '../errors.js'
import { AGENT_OPTIONS, CLASSIFIER_OPTIONS, CNI_INSTALL_OPTIONS, NODE_AGENT_OPTIONS, OPTIONS, type OptionTable, VALIDATE_OPTIONS } from './options.js'
import { INJECT_OPTIONS, WEBHOOK_OPTIONS } from './inject-options.js'
import type {
  AgentSettings,
  Cidr,
  ClassifierSettings,
  CniInstallSettings,
  InjectSettings,
  NodeAgentSettings,
  OptionSettings,
  Settings,
  ValidateSettings,
  WebhookSettings,
} from './types.js'

export type Env = Readonly<Record<string, string | undefined>>
/** Flag values by option key, as given on the command line. */
export type Flags = Readonly<Record<string, string | undefined>>

/** The name an error gives a setting: its flag when the value came from the command line, else its env var. */
const sourceName = (spec: { flag: string; env: string }, flag: string | undefined): string => (flag !== undefined ? `--${spec.flag}` : spec.env)

/** settingName names one of the main settings as sourceName does, for checks made after parsing. */
export const settingName = (key: keyof OptionSettings, flags: Flags): string => sourceName(OPTIONS[key], flags[key])

/** parseOptions reads every option of a table: the flag if given, else the env var, else the default. Pure. */
const parseOptions = <S>(table: OptionTable<S>, env: Env, flags: Flags): S => {
  const keys = Object.keys(table) as (keyof S & string)[]
  const entries = keys.map(key => {
    const spec = table[key]
    const flag = flags[key]
    return [key, spec.parse(flag ?? env[spec.env] ?? spec.default, sourceName(spec, flag))] as const
  })
  return Object.fromEntries(entries) as S
}

export const parseAgentSettings = (env: Env, flags: Flags = {}): AgentSettings => parseOptions(AGENT_OPTIONS, env, flags)

export const parseClassifierSettings = (env: Env, flags: Flags = {}): ClassifierSettings => parseOptions(CLASSIFIER_OPTIONS, env, flags)

export const parseNodeAgentSettings = (env: Env, flags: Flags = {}): NodeAgentSettings => parseOptions(NODE_AGENT_OPTIONS, env, flags)

export const parseValidateSettings = (env: Env, flags: Flags = {}): ValidateSettings => parseOptions(VALIDATE_OPTIONS, env, flags)

export const parseCniInstallSettings = (env: Env, flags: Flags = {}): CniInstallSettings => parseOptions(CNI_INSTALL_OPTIONS, env, flags)

export const parseInjectSettings = (env: Env, flags: Flags = {}): InjectSettings => {
  const settings = parseOptions(INJECT_OPTIONS, env, flags)
  // In mode cni the node's plugin reads the same annotations and refuses these, whatever it is told: a pod the
  // injector let set one would never start. One allow-list, one meaning: refuse it here too.
  const operatorOnly =
    settings.mode === 'cni' ? Object.values(OPTIONS).find(s => s.trust === 'operator' && settings.annotations.includes(s.flag)) : undefined
  if (operatorOnly !== undefined) {
    const spec = INJECT_OPTIONS.annotations
    throw new ConfigError(
      sourceName(spec, flags['annotations']),
      flags['annotations'] ?? env[spec.env] ?? spec.default,
      `in mode cni, no setting only the node's operator sets (${operatorOnly.flag}: ${operatorOnly.env} names a node path or decides how the node agent runs, so the CNI plugin refuses it as an annotation)`,
    )
  }
  return settings
}

export const parseWebhookSettings = (env: Env, flags: Flags = {}): WebhookSettings => parseOptions(WEBHOOK_OPTIONS, env, flags)

const firstIpv6 = (cidrs: 'all' | readonly Cidr[]): Cidr | undefined => (cidrs === 'all' ? undefined : cidrs.find(c => c.family === 'ipv6'))

/** parseSettings validates every setting into one Settings value; files are read by loadSettings. Pure; throws ConfigError. */
export const parseSettings = (env: Env, flags: Flags = {}): Settings => {
  const settings = parseOptions(OPTIONS, env, flags)
  // With IPv6 turned off, an IPv6 CIDR would be dropped without a word; refuse it instead.
  if (settings.ipv6 === 'false') {
    for (const key of ['outboundIncludeCidrs', 'outboundExcludeCidrs'] as const) {
      const v6 = firstIpv6(settings[key])
      if (v6) {
        const text = flags[key] ?? env[OPTIONS[key].env] ?? ''
        throw new ConfigError(settingName(key, flags), text, `IPv4 CIDRs only while ISTIO_IPV6=false ("${v6.address}/${v6.prefix}" is IPv6)`)
      }
    }
  }
  // The proxy's SO_MARK'd upstream sockets would match TPROXY's policy rule and be routed back into the pod.
  const { mark } = settings
  if (
    settings.inboundInterceptionMode === 'TPROXY' &&
    settings.outboundMethod === 'mark' &&
    (settings.inboundTproxyMark & (mark.mask ?? 0xffffffff)) >>> 0 === mark.value
  ) {
    throw new ConfigError(
      settingName('inboundTproxyMark', flags),
      flags['inboundTproxyMark'] ?? env[OPTIONS.inboundTproxyMark.env] ?? OPTIONS.inboundTproxyMark.default,
      `a mark that ISTIO_SO_MARK's match does not take (the proxy's own marked connections would be routed back into the pod)`,
    )
  }
  return { ...settings, nameservers: [] }
}
