// Settings come from env vars and flags; a flag wins over its env var. Pure: the caller hands in both maps.

import { ConfigError } from '../errors.js'
import { OPTIONS, OPTION_KEYS } from './options.js'
import type { Cidr, Settings } from './types.js'

export type Env = Readonly<Record<string, string | undefined>>
export type Flags = Readonly<Partial<Record<keyof Settings, string>>>

const parseOne = <K extends keyof Settings>(key: K, env: Env, flags: Flags): Settings[K] => {
  const spec = OPTIONS[key]
  const flag = flags[key]
  if (flag !== undefined) return spec.parse(flag, `--${spec.flag}`)
  const fromEnv = env[spec.env]
  return spec.parse(fromEnv ?? spec.default, spec.env)
}

const firstIpv6 = (cidrs: 'all' | readonly Cidr[]): Cidr | undefined =>
  cidrs === 'all' ? undefined : cidrs.find(c => c.family === 'ipv6')

/** parseSettings validates every setting into one Settings value. Pure; throws ConfigError. */
export const parseSettings = (env: Env, flags: Flags = {}): Settings => {
  const entries = OPTION_KEYS.map(key => [key, parseOne(key, env, flags)] as const)
  const settings = Object.fromEntries(entries) as unknown as Settings
  // With IPv6 turned off, an IPv6 CIDR would be dropped without a word; refuse it instead.
  if (settings.ipv6 === 'false') {
    for (const key of ['outboundIncludeCidrs', 'outboundExcludeCidrs'] as const) {
      const v6 = firstIpv6(settings[key])
      if (v6) {
        const spec = OPTIONS[key]
        const where = flags[key] !== undefined ? `--${spec.flag}` : spec.env
        const text = flags[key] ?? env[spec.env] ?? ''
        throw new ConfigError(where, text, `IPv4 CIDRs only while ISTIO_IPV6=false ("${v6.address}/${v6.prefix}" is IPv6)`)
      }
    }
  }
  return settings
}
