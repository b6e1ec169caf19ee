// Settings, plus the services file they may name: the one read that validation needs. It happens before any
// process starts, so a bad file is refused like a bad variable, with nothing touched.

import { ConfigError, FileConfigError } from '../errors.js'
import { parseSettings, settingName, type Env, type Flags } from './parse.js'
import { formatService, refuseOverlaps, type Located } from './services.js'
import { readNameservers } from './resolv-conf.js'
import { asFileError } from './services-file.js'
import type { Cidr, Settings } from './types.js'

/** Reads a services file; throws ConfigError naming `variable`, the file and why (readServicesFile does). */
export type ReadServices = (path: string, variable: string) => Promise<Located[]>

/** Reads the nameservers of a resolv.conf; throws ConfigError naming `variable` (readNameservers does). */
export type ReadNameservers = (path: string, variable: string) => Promise<Cidr[]>

/** loadSettings is parseSettings plus the files settings name (services, resolv.conf); throws ConfigError. */
export const loadSettings = async (
  env: Env,
  flags: Flags,
  readServices: ReadServices,
  readResolvConf: ReadNameservers = readNameservers,
): Promise<Settings> => {
  const settings = parseSettings(env, flags)
  // Nameservers given outright win over the file, which is then never opened (CNI mode: it would be the node's).
  if (settings.dnsServers.length > 0 && settings.dnsCapture !== 'resolv-conf') {
    throw new ConfigError(
      settingName('dnsServers', flags),
      settings.dnsServers.map(c => c.address).join(','),
      'empty unless ISTIO_DNS_CAPTURE=resolv-conf (only that mode captures by nameserver)',
    )
  }
  const nameservers =
    settings.dnsCapture !== 'resolv-conf'
      ? []
      : settings.dnsServers.length > 0
        ? settings.dnsServers
        : await readResolvConf(settings.resolvConf, settingName('resolvConf', flags))
  const fileVariable = settingName('servicesFile', flags)
  const path = settings.servicesFile
  const fromFile = path === undefined ? [] : await readServices(path, fileVariable)
  const fromEnv = settings.services.map(service => ({ service, variable: settingName('services', flags), where: '', text: formatService(service) }))
  // The env's entries alone first: a refusal that remains involves a line of the file, and quotes it.
  refuseOverlaps(fromEnv)
  asFileError(() => refuseOverlaps([...fromEnv, ...fromFile]))
  const services = [...settings.services, ...fromFile.map(l => l.service)]
  // With IPv6 left alone an IPv6 service would be dropped without a word, as an IPv6 CIDR would: refuse it.
  if (settings.ipv6 === 'false') {
    for (const [entries, Refusal] of [
      [fromEnv, ConfigError],
      [fromFile, FileConfigError],
    ] as const) {
      const v6 = entries.find(l => l.service.cidr.family === 'ipv6')
      if (v6) throw new Refusal(v6.variable, `${v6.where}${v6.text}`, 'IPv4 services only while ISTIO_IPV6=false (this one is IPv6)')
    }
  }
  if (settings.outboundMethod === 'explicit' && services.length === 0) {
    // With a file named, this says the file lists nothing: about the file, so a FileConfigError.
    throw new (path === undefined ? ConfigError : FileConfigError)(
      settingName('services', flags),
      '',
      'at least one service (in ISTIO_SERVICES or ISTIO_SERVICES_FILE) with ISTIO_OUTBOUND_METHOD=explicit',
    )
  }
  if (settings.outboundMethod !== 'explicit' && services.length > 0) {
    throw new ConfigError(
      settingName('outboundMethod', flags),
      settings.outboundMethod,
      'explicit when services are listed (only the explicit method captures by service)',
    )
  }
  return { ...settings, services, nameservers }
}
