// Parsers for the shapes of value the settings take. Each returns the value or throws a ConfigError that names
// the variable, the value and what is accepted; `where` is the env var or flag the text came from.

import { ConfigError } from '../errors.js'
import { parseCidr } from './cidr.js'
import type { Cidr, PortRange } from './types.js'

const DECIMAL = /^(0|[1-9]\d*)$/
const HEX = /^0x[0-9a-fA-F]+$/

/** An integer in [min, max], in decimal or 0x hex. `whole` is the full value when `text` is a part of it. */
export const parseInteger = (text: string, where: string, min: number, max: number, accepted: string, whole = text): number => {
  const trimmed = text.trim()
  const value = DECIMAL.test(trimmed) || HEX.test(trimmed) ? Number(trimmed) : NaN
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new ConfigError(where, whole, accepted)
  return value
}

export const parseChoice = <T extends string>(text: string, where: string, choices: readonly T[]): T => {
  const trimmed = text.trim()
  const found = choices.find(c => c === trimmed)
  if (found === undefined) throw new ConfigError(where, text, `one of ${choices.join(', ')}`)
  return found
}

const splitList = (text: string): string[] => (text.trim() === '' ? [] : text.split(',').map(s => s.trim()))

const PORTS = 'comma-separated ports 1-65535 or ranges like 9000-9100 (low-high)'

export const parsePortList = (text: string, where: string): PortRange[] =>
  splitList(text).map(item => {
    const [low = '', high, ...rest] = item.split('-')
    const from = DECIMAL.test(low) ? Number(low) : NaN
    const to = high === undefined ? from : DECIMAL.test(high) ? Number(high) : NaN
    const valid = rest.length === 0 && from >= 1 && to <= 65535 && from <= to
    if (!valid) throw new ConfigError(where, text, `${PORTS}; ${JSON.stringify(item)} is not one`)
    return { from, to }
  })

/** `*` means every port; otherwise a port list (empty means none). */
export const parsePortSelection = (text: string, where: string): 'all' | PortRange[] => (text.trim() === '*' ? 'all' : parsePortList(text, where))

const CIDRS = 'comma-separated IPv4 or IPv6 addresses or CIDRs like 169.254.169.254/32 or 2001:db8::/32'

export const parseCidrList = (text: string, where: string): Cidr[] =>
  splitList(text).map(item => {
    const cidr = parseCidr(item)
    if (!cidr) throw new ConfigError(where, text, `${CIDRS}; ${JSON.stringify(item)} is not one`)
    return cidr
  })

export const parseCidrSelection = (text: string, where: string): 'all' | Cidr[] => (text.trim() === '*' ? 'all' : parseCidrList(text, where))

// The kernel's dev_valid_name: 1 to 15 bytes (IFNAMSIZ less the NUL), not "." or "..", no '/', ':' or whitespace.
// Beyond it: no control characters or quotes, which no rule text can carry as written, and no trailing '+' or
// '*', which iptables and nft read as "any name starting with", and not alike, so one name means one interface.
const INTERFACES =
  'comma-separated interface names of 1 to 15 bytes, without "/", ":", whitespace, quotes or control characters, not "." or "..", and not ending in "+" or "*"'

const validInterface = (name: string): boolean =>
  Buffer.byteLength(name) >= 1 &&
  Buffer.byteLength(name) <= 15 &&
  name !== '.' &&
  name !== '..' &&
  !/[/:\s"'\\\p{Cc}]/u.test(name) &&
  !/[+*]$/.test(name)

/** Interface names, each once. */
export const parseInterfaceList = (text: string, where: string): string[] => [
  ...new Set(
    splitList(text).map(item => {
      if (!validInterface(item)) throw new ConfigError(where, text, `${INTERFACES}; ${JSON.stringify(item)} is not one`)
      return item
    }),
  ),
]
