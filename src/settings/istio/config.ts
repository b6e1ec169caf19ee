// Istio's configuration from its command line, its environment and the pod, as Istio derives it: defaults, then
// each bound variable in order, then the flags; the proxy's GIDs default to its UIDs; IPv6 is captured when the
// pod's first global address is IPv6 (or, with --dual-stack, when it has one). Pure: the caller hands in the
// files and addresses. Where Istio quietly ignores a bad value, this refuses it naming the setting (exit 1), so a
// pod is never captured other than asked.

import { ConfigError, UsageError } from '../../errors.js'
import { parseCidr } from '../cidr.js'
import type { Cidr, PortRange } from '../types.js'
import { parseInterfaceList } from '../values.js'
import type { ParsedArgv } from './argv.js'
import { ALL_ISTIO_FLAGS, ISTIO_ENV_ONLY, LOG_FLAGS, type FlagKind, type IstioFlag, type IstioFlagKey } from './options.js'
import { ISTIO_LEVELS, type IstioConfig, type IstioLevel, type IstioLogging, type OwnerGroups } from './types.js'

export type Env = Readonly<Record<string, string | undefined>>

/** Every flag's text as in force, by key (a list flag's texts joined by NUL), and where it came from. */
export interface IstioValues {
  readonly text: Readonly<Record<string, string>>
  readonly from: Readonly<Record<string, string>>
  readonly targets: readonly string[]
}

const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True']
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False']
const DURATION = /^[+-]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$/
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

const ACCEPTED: Record<FlagKind, string> = {
  string: 'text',
  strings: 'text',
  bool: 'true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)',
  uint16: 'a number from 0 to 65535',
  duration: 'a duration such as 5s, 500ms or 1m30s',
  int: 'a whole number',
}

/** Whether a text is a value of the kind, as Go's flag package parses it. */
const validKind = (kind: FlagKind, text: string): boolean => {
  switch (kind) {
    case 'string':
    case 'strings':
      return true
    case 'bool':
      return GO_TRUE.includes(text) || GO_FALSE.includes(text)
    case 'uint16': {
      const n = /^(0|[1-9]\d*|0x[0-9a-fA-F]+|0o[0-7]+|0b[01]+)$/.test(text) ? Number(text) : NaN
      return Number.isInteger(n) && n <= 65535
    }
    case 'duration':
      return text === '0' || DURATION.test(text)
    case 'int':
      return /^[+-]?\d+$/.test(text)
  }
}

/**
 * readIstioValues applies defaults, then the bound variables in order, then the flags; a list flag collects its
 * flags. A bad value of a kind is refused: on the command line as Go's flag package refuses it (UsageError), in
 * the environment naming the variable (ConfigError; Istio would ignore it). An empty boolean variable is unset.
 */
export const readIstioValues = (parsed: ParsedArgv, env: Env): IstioValues => {
  const text: Record<string, string> = {}
  const from: Record<string, string> = {}
  for (const [key, f] of Object.entries(ALL_ISTIO_FLAGS) as [string, IstioFlag][]) {
    text[key] = f.default
    from[key] = `the default of --${f.long}`
    for (const name of f.env) {
      const value = env[name]
      if (value === undefined || (value === '' && f.kind === 'bool')) continue
      if (!validKind(f.kind, value)) throw new ConfigError(name, value, ACCEPTED[f.kind])
      text[key] = value
      from[key] = name
    }
    const given = parsed.values.get(key)
    if (!given) continue
    for (const value of given) {
      if (!validKind(f.kind, value))
        throw new UsageError(`invalid argument ${JSON.stringify(value)} for "--${f.long}" flag: expected ${ACCEPTED[f.kind]}`)
    }
    text[key] = given[given.length - 1]!
    from[key] = `--${f.long}`
  }
  const targets = parsed.values.get('logTarget') ?? [LOG_FLAGS.logTarget.default]
  return { text, from, targets }
}

/** A boolean's text as Go reads it is true. */
export const isGoTrue = (text: string | undefined): boolean => GO_TRUE.includes(text ?? '')

const durationMs = (text: string): number => {
  if (text === '0') return 0
  const sign = text.startsWith('-') ? -1 : 1
  let total = 0
  for (const m of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!
  return sign * total
}

/** readIstioLogging reads the logging flags; a bad level is refused as pilot-agent refuses it (UsageError). Pure. */
export const readIstioLogging = (values: IstioValues): IstioLogging => {
  const levelOf = (flag: string, text: string): IstioLevel => {
    let level: IstioLevel = 'info'
    for (const part of text.split(',').filter(p => p !== '')) {
      const pieces = part.split(':')
      if (pieces.length > 2) throw new UsageError(`--${flag}: invalid output level format '${part}'`)
      const [scope, name] = pieces.length === 1 ? ['default', pieces[0]!] : [pieces[0]!, pieces[1]!]
      const found = ISTIO_LEVELS.find(l => l === name)
      if (!found) throw new UsageError(`--${flag}: invalid output level '${name}'`)
      if (scope === 'default' || scope === 'all') level = found
    }
    return level
  }
  const level = levelOf('log_output_level', values.text['logOutputLevel'] ?? '')
  levelOf('log_stacktrace_level', values.text['logStacktraceLevel'] ?? '')
  return { json: isGoTrue(values.text['logAsJson'] ?? 'false'), level, targets: values.targets.flatMap(t => t.split(',')).filter(t => t !== '') }
}

/** What of the pod the configuration needs: the user and group databases, resolv.conf, the interfaces' addresses. */
export interface IstioFacts {
  readonly passwd: string | undefined
  readonly group: string | undefined
  /** /etc/resolv.conf, when DNS redirection to its nameservers is asked (see needsResolvConf). */
  readonly resolvConf: string | undefined
  /** Every address of every interface, as the kernel lists them. */
  readonly addresses: readonly string[]
}

const flagName = (key: IstioFlagKey): string => `--${ALL_ISTIO_FLAGS[key].long}`

/** needsResolvConf: Istio reads /etc/resolv.conf only for DNS redirection to its nameservers. Pure. */
export const needsResolvConf = (values: IstioValues): boolean =>
  isGoTrue(values.text['redirectDns'] ?? '') && !isGoTrue(values.text['captureAllDns'] ?? '')

const split = (text: string): string[] =>
  text
    .split(',')
    .map(s => s.trim())
    .filter(s => s !== '')

/** A name from a colon-separated database (/etc/passwd, /etc/group): its numeric ID, the third field. */
const idFromDatabase = (database: string | undefined, name: string): number | undefined => {
  for (const line of (database ?? '').split('\n')) {
    const fields = line.split(':')
    if (fields[0] === name && fields.length >= 3 && /^\d+$/.test(fields[2]!)) return Number(fields[2])
  }
  return undefined
}

const ID = /^(0|[1-9]\d*)$/

/** IDs as iptables' owner match takes them: numbers, or names it looks up in the image's databases. */
const ids = (text: string, where: string, value: string, database: string | undefined, what: 'user' | 'group'): number[] =>
  split(text).map(item => {
    const id = ID.test(item) ? Number(item) : idFromDatabase(database, item)
    if (id === undefined || id > 4294967294)
      throw new ConfigError(
        where,
        value,
        `comma-separated numeric ${what === 'user' ? 'UIDs' : 'GIDs'} or names in /etc/${what === 'user' ? 'passwd' : 'group'} ("${item}" is neither)`,
      )
    return id
  })

const port = (text: string, where: string, value: string): number => {
  if (!/^(0|[1-9]\d*)$/.test(text.trim()) || Number(text) < 1 || Number(text) > 65535)
    throw new ConfigError(where, value, 'a TCP port from 1 to 65535')
  return Number(text)
}

const ports = (text: string, where: string): PortRange[] =>
  split(text).map(item => {
    const [low = '', high, ...more] = item.split(':')
    const from = /^\d+$/.test(low) ? Number(low) : NaN
    const to = high === undefined ? from : /^\d+$/.test(high) ? Number(high) : NaN
    if (more.length > 0 || !(from >= 1 && to <= 65535 && from <= to))
      throw new ConfigError(where, text, `comma-separated ports 1-65535 or ranges low:high ("${item}" is not one)`)
    return { from, to }
  })

const CIDRS = 'comma-separated CIDRs like 10.0.0.0/8 or 2001:db8::/32 (an address needs its /prefix)'

/** CIDRs as Go's netip.ParsePrefix takes them (a prefix length is required); loopback says whether one is. */
const cidrs = (text: string, where: string): { list: Cidr[]; loopback: boolean } => {
  let loopback = false
  const list = split(text).map(item => {
    const cidr = item.includes('/') ? parseCidr(item) : undefined
    if (!cidr) throw new ConfigError(where, text, `${CIDRS}; "${item}" is not one`)
    const host = parseCidr(item.slice(0, item.indexOf('/')))
    if (host && (host.family === 'ipv4' ? host.address.startsWith('127.') : host.address === '::1')) loopback = true
    return cidr
  })
  return { list, loopback }
}

// An IPv4-mapped IPv6 address is its IPv4 address, as Go unmaps it.
const unmapped = (address: string): string => address.toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1')

// Go's net.IP classes Istio skips when it picks the pod's address: loopback and link-local.
const isGlobal = (a: string): boolean =>
  a.includes(':') ? a !== '::1' && !/^fe[89ab]/.test(a) && !/^ff[0-9a-f]2:/.test(a) : !a.startsWith('127.') && !a.startsWith('169.254.')

/**
 * Istio's choice of IPv6: the kernel lists every IPv4 address before any IPv6 one, and Istio takes the first
 * global address, so IPv6 is captured when the pod has no global IPv4 address; with dual stack, when it has any
 * global IPv6 address. No global address at all is an error, as in Istio.
 */
const chooseIpv6 = (addresses: readonly string[], dualStack: boolean): { enableIpv6: boolean; hostIp: string } => {
  const global = addresses.map(unmapped).filter(isGlobal)
  const v4 = global.find(a => !a.includes(':'))
  const v6 = global.find(a => a.includes(':'))
  const hostIp = v4 ?? v6
  if (hostIp === undefined)
    throw new ConfigError(
      'the pod',
      addresses.join(','),
      'a global (not loopback or link-local) address to tell the families by: no valid local IP address found',
    )
  return { enableIpv6: dualStack ? v6 !== undefined : v4 === undefined, hostIp }
}

const nameservers = (text: string | undefined): Cidr[] => {
  if (text === undefined)
    throw new ConfigError('/etc/resolv.conf', '', 'a readable file: DNS redirection to its nameservers reads it (failed to load /etc/resolv.conf)')
  return text.split('\n').flatMap(line => {
    const [keyword, address] = line.trim().split(/\s+/)
    if (keyword !== 'nameserver' || address === undefined) return []
    const cidr = address.includes('/') ? undefined : parseCidr(address)
    if (!cidr) throw new ConfigError('/etc/resolv.conf nameserver', address, 'an IPv4 or IPv6 address without a zone')
    return [cidr]
  })
}

const LOOPBACK_CIDR = 'an IPv4 loopback CIDR (in 127.0.0.0/8) with a prefix of 8 to 32, e.g. 127.0.0.1/32'

/** resolveIstioConfig turns the texts in force and the pod's facts into the configuration. Pure; throws ConfigError. */
export const resolveIstioConfig = (values: IstioValues, env: Env, facts: IstioFacts): IstioConfig => {
  const t = (key: IstioFlagKey): string => values.text[key] ?? ''
  const where = (key: IstioFlagKey): string => (values.from[key]?.startsWith('the default') ? flagName(key) : (values.from[key] ?? flagName(key)))
  const bool = (key: IstioFlagKey): boolean => isGoTrue(t(key))
  const envOnly = (key: keyof typeof ISTIO_ENV_ONLY): string => env[ISTIO_ENV_ONLY[key].env] ?? ISTIO_ENV_ONLY[key].default

  const uidText = t('proxyUid').trim()
  const envoyUser = envOnly('envoyUser')
  const proxyUids =
    uidText === '' ? [idFromDatabase(facts.passwd, envoyUser) ?? 1337] : ids(uidText, where('proxyUid'), t('proxyUid'), facts.passwd, 'user')
  // Istio copies the UID text, so a name is then looked up as a group.
  const gidText = t('proxyGid').trim() === '' ? (uidText === '' ? String(proxyUids[0]) : uidText) : t('proxyGid')
  const proxyGids = ids(gidText, where(t('proxyGid').trim() === '' ? 'proxyUid' : 'proxyGid'), gidText, facts.group, 'group')

  const mode = t('interceptionMode').trim()
  if (!['', 'REDIRECT', 'TPROXY'].includes(mode))
    throw new ConfigError(where('interceptionMode'), t('interceptionMode'), 'REDIRECT or TPROXY (or empty, REDIRECT)')

  const inbound = t('inboundPorts').trim()
  const include = t('outboundIncludeCidrs').trim()
  const included = include === '*' ? { list: [], loopback: false } : cidrs(include, where('outboundIncludeCidrs'))
  if (t('outboundExcludeCidrs').trim() === '*')
    throw new ConfigError(
      where('outboundExcludeCidrs'),
      '*',
      `${CIDRS}: a wildcard cannot be excluded (invalid value for OUTBOUND_IP_RANGES_EXCLUDE)`,
    )
  const excluded = cidrs(t('outboundExcludeCidrs'), where('outboundExcludeCidrs'))

  const mark = t('tproxyMark').trim()
  if (!/^(0|[1-9]\d*)$/.test(mark) || Number(mark) > 0xffffffff)
    throw new ConfigError(where('tproxyMark'), t('tproxyMark'), 'a decimal mark from 0 to 4294967295')
  const table = t('tproxyRouteTable').trim()
  if (!/^[1-9]\d*$/.test(table) || Number(table) > 0xffffffff || [253, 254, 255].includes(Number(table)))
    throw new ConfigError(
      where('tproxyRouteTable'),
      t('tproxyRouteTable'),
      "a decimal routing table from 1 to 4294967295 other than 253, 254 and 255 (the kernel's default, main and local tables)",
    )

  const loopbackText = envOnly('loopbackCidr')
  const loopback = loopbackText.includes('/') ? parseCidr(loopbackText) : undefined
  const loopbackHost = loopback && parseCidr(loopbackText.slice(0, loopbackText.indexOf('/')))
  if (!loopback || loopback.family !== 'ipv4' || !loopbackHost?.address.startsWith('127.') || loopback.prefix < 8)
    throw new ConfigError(ISTIO_ENV_ONLY.loopbackCidr.env, loopbackText, LOOPBACK_CIDR)

  const ownerGroups = ((): OwnerGroups => {
    const includeGroups = envOnly('ownerGroups')
    const variable = includeGroups === '*' ? ISTIO_ENV_ONLY.ownerGroupsExclude.env : ISTIO_ENV_ONLY.ownerGroups.env
    const listed = includeGroups === '*' ? envOnly('ownerGroupsExclude') : includeGroups
    const gids = ids(listed, variable, listed, facts.group, 'group')
    if (includeGroups !== '*' && gids.length > 64) throw new ConfigError(variable, listed, 'at most 64 groups: each is a match of one rule')
    return { except: includeGroups === '*', gids }
  })()

  const variant = t('forceIptablesBinary').trim()
  if (!['', 'legacy', 'nft'].includes(variant)) throw new ConfigError(where('forceIptablesBinary'), variant, 'legacy, nft or empty')

  const redirectDns = bool('redirectDns')
  const captureAllDns = bool('captureAllDns')
  const dnsServers = redirectDns && !captureAllDns ? nameservers(facts.resolvConf) : []
  const netns = t('networkNamespace').trim()
  if (netns !== '' && !netns.startsWith('/'))
    throw new ConfigError(where('networkNamespace'), netns, 'an absolute path to a network namespace, e.g. /var/run/netns/cni-...')

  return {
    proxyPort: port(t('proxyPort'), where('proxyPort'), t('proxyPort')),
    inboundCapturePort: port(t('inboundCapturePort'), where('inboundCapturePort'), t('inboundCapturePort')),
    inboundTunnelPort: port(t('inboundTunnelPort'), where('inboundTunnelPort'), t('inboundTunnelPort')),
    proxyUids,
    proxyGids,
    tproxy: mode === 'TPROXY',
    inboundPorts: inbound === '*' ? 'all' : ports(inbound, where('inboundPorts')),
    inboundExcludePorts: ports(t('inboundExcludePorts'), where('inboundExcludePorts')),
    excludeInterfaces: parseInterfaceList(t('excludeInterfaces'), where('excludeInterfaces')),
    outboundInclude: include === '*' ? 'all' : included.list,
    outboundExclude: excluded.list,
    includeHasLoopback: included.loopback,
    outboundPorts: ports(t('outboundPorts'), where('outboundPorts')),
    outboundExcludePorts: ports(t('outboundExcludePorts'), where('outboundExcludePorts')),
    rerouteInterfaces: parseInterfaceList(t('rerouteInterfaces'), where('rerouteInterfaces')),
    tproxyMark: Number(mark),
    tproxyRouteTable: Number(table),
    dns: !redirectDns ? 'off' : captureAllDns ? 'all' : dnsServers.length > 0 ? 'servers' : 'off',
    dnsServers,
    ownerGroups,
    loopbackCidr: loopback,
    dropInvalid: bool('dropInvalid'),
    ...chooseIpv6(facts.addresses, bool('dualStack')),
    dryRun: bool('dryRun'),
    skipRuleApply: bool('skipRuleApply'),
    runValidation: bool('runValidation'),
    cleanupOnly: bool('cleanupOnly'),
    nativeNftables: bool('nativeNftables'),
    iptablesVariant: variant === '' ? undefined : (variant as 'legacy' | 'nft'),
    networkNamespace: netns === '' ? undefined : netns,
    probePort: Number(t('probePort')),
    probeTimeoutMs: durationMs(t('probeTimeout')),
  }
}
