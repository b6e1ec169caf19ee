// Settings, plus the services file they may name: the one read that validation needs. It happens before any
// process starts, so a bad file is refused like a bad variable, with nothing touched.

import { ConfigError } from '../errors.js'
import { parseSettings, settingName, type Env, type Flags } from './parse.js'
import { formatService, refuseOverlaps, type Located } from './services.js'
import { readNameservers } from './resolv-conf.js'
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
  const nameservers = settings.dnsCapture === 'resolv-conf' ? await readResolvConf(settings.resolvConf, settingName('resolvConf', flags)) : []
  const fileVariable = settingName('servicesFile', flags)
  const path = settings.servicesFile
  const fromFile = path === undefined ? [] : await readServices(path, fileVariable)
  const fromEnv = settings.services.map(service => ({ service, variable: settingName('services', flags), where: '', text: formatService(service) }))
  refuseOverlaps([...fromEnv, ...fromFile])
  const services = [...settings.services, ...fromFile.map(l => l.service)]
  // With IPv6 left alone an IPv6 service would be dropped without a word, as an IPv6 CIDR would: refuse it.
  if (settings.ipv6 === 'false') {
    const v6 = [...fromEnv, ...fromFile].find(l => l.service.cidr.family === 'ipv6')
    if (v6) throw new ConfigError(v6.variable, `${v6.where}${v6.text}`, 'IPv4 services only while ISTIO_IPV6=false (this one is IPv6)')
  }
  if (settings.outboundMethod === 'explicit' && services.length === 0) {
    throw new ConfigError(
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
