// Writes settings back in the env-var form a user would type, so the report shows what was in force after defaults.

import { formatCidr } from './cidr.js'
import { OPTIONS, OPTION_KEYS } from './options.js'
import { formatService } from './services.js'
import type { Cidr, Mark, PortRange, Service, Settings } from './types.js'
import { hex } from '../text.js'

const isMark = (v: object): v is Mark => 'value' in v && 'mask' in v
const isCidr = (v: object): v is Cidr => 'prefix' in v
const isRange = (v: object): v is PortRange => 'from' in v
const isService = (v: object): v is Service => 'cidr' in v

// The settings whose `*` parses to 'all'; elsewhere 'all' is a choice of its own (ISTIO_DNS_CAPTURE=all,
// ISTIO_EXCLUDE_INTERFACES_SCOPE=all) and is written as it is. Nameservers are addresses, written without a prefix.
const STAR: ReadonlySet<keyof Settings> = new Set(['inboundPorts', 'outboundIncludeCidrs', 'acceptBpfPrograms'])

const formatValue = (key: keyof Settings, value: Settings[keyof Settings]): string => {
  if (value === undefined) return ''
  if (value === 'all' && STAR.has(key)) return '*'
  if (typeof value !== 'object') return String(value)
  if (isMark(value)) return value.mask === undefined ? hex(value.value) : `${hex(value.value)}/${hex(value.mask)}`
  return value
    .map(item =>
      typeof item === 'string'
        ? item
        : isService(item)
          ? formatService(item)
          : isCidr(item)
            ? key === 'dnsServers'
              ? item.address
              : formatCidr(item)
            : isRange(item) && item.from !== item.to
              ? `${item.from}-${item.to}`
              : `${(item as PortRange).from}`,
    )
    .join(',')
}

/** formatSettings maps each env var to the value in force. Pure. */
export const formatSettings = (settings: Settings): Record<string, string> =>
  Object.fromEntries(OPTION_KEYS.map(key => [OPTIONS[key].env, key === 'netClsId' ? hex(settings.netClsId) : formatValue(key, settings[key])]))
