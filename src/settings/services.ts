// The services the explicit method captures: `CIDR[:port[-port]]` entries, from ISTIO_SERVICES (comma-separated)
// and ISTIO_SERVICES_FILE (one per line, `#` comments). An IPv6 address takes brackets when a port follows:
// `[2001:db8::/32]:443`. Entries are refused with their line and text, and so are entries that overlap another
// of the same kind (nftables' interval sets refuse overlaps, and an overlap is a mistake in the list anyway).

import { ConfigError } from '../errors.js'
import { cidrRange, formatCidr, parseCidr } from './cidr.js'
import type { Cidr, PortRange } from './types.js'

export interface Service {
  readonly cidr: Cidr
  /** undefined: every port of the address. */
  readonly ports: PortRange | undefined
}

const ACCEPTED = 'entries CIDR[:port[-port]], e.g. 198.18.0.10:80, 198.18.0.0/16:8000-8080, [2001:db8::/32]:443 or 198.18.1.0/24'
// A port range is expanded into one ipset member per port; this keeps a list of services a list, not a flood.
const MAX_RANGE = 1024

const parsePorts = (text: string): PortRange | undefined => {
  const match = /^([1-9]\d{0,4})(?:-([1-9]\d{0,4}))?$/.exec(text)
  if (!match) return undefined
  const from = Number(match[1])
  const to = match[2] === undefined ? from : Number(match[2])
  return from <= to && to <= 65535 && to - from < MAX_RANGE ? { from, to } : undefined
}

/** parseService reads one entry; undefined when it is not one. Pure. */
export const parseService = (entry: string): Service | undefined => {
  const bracketed = /^\[([^\]]+)\](?::(.+))?$/.exec(entry)
  const v4WithPort = /^(\d+\.[\d./]+):(.+)$/.exec(entry)
  const [addressText, portText] = bracketed ? [bracketed[1], bracketed[2]] : v4WithPort ? [v4WithPort[1], v4WithPort[2]] : [entry, undefined]
  const cidr = parseCidr(addressText ?? '')
  if (!cidr || (bracketed && cidr.family !== 'ipv6')) return undefined
  if (portText === undefined) return { cidr, ports: undefined }
  const ports = parsePorts(portText)
  return ports ? { cidr, ports } : undefined
}

export const formatService = (s: Service): string => {
  const address = formatCidr(s.cidr)
  if (!s.ports) return address
  const ports = s.ports.from === s.ports.to ? `${s.ports.from}` : `${s.ports.from}-${s.ports.to}`
  return s.cidr.family === 'ipv6' ? `[${address}]:${ports}` : `${address}:${ports}`
}

export interface Located {
  readonly service: Service
  /** Where it came from, for errors: the variable, and a prefix such as "line 3: ". */
  readonly variable: string
  readonly where: string
  readonly text: string
}

/** parseServiceEntries reads entries; `at` says where each came from ("line 3: "), for errors. Pure. */
export const parseServiceEntries = (entries: readonly { text: string; at: string }[], variable: string, whole?: string): Located[] =>
  entries.map(({ text, at }) => {
    const service = parseService(text)
    if (!service) throw new ConfigError(variable, whole ?? `${at}${text}`, `${ACCEPTED} (port ranges under ${MAX_RANGE} ports); ${JSON.stringify(text)} is not one`)
    return { service, variable, where: at, text }
  })

const overlaps = (a: Service, b: Service): boolean => {
  const [a0, a1] = cidrRange(a.cidr)
  const [b0, b1] = cidrRange(b.cidr)
  const addresses = a.cidr.family === b.cidr.family && a0 <= b1 && b0 <= a1
  return addresses && (!a.ports || !b.ports || (a.ports.from <= b.ports.to && b.ports.from <= a.ports.to))
}

/** refuseOverlaps throws for the first two entries of the same kind (with or without ports) that overlap. Pure. */
export const refuseOverlaps = (located: readonly Located[]): void => {
  for (const withPorts of [false, true]) {
    const group = located
      .filter(l => (l.service.ports !== undefined) === withPorts)
      .map(l => ({ l, range: cidrRange(l.service.cidr) }))
      .sort((x, y) => (x.l.service.cidr.family < y.l.service.cidr.family ? -1 : x.l.service.cidr.family > y.l.service.cidr.family ? 1 : x.range[0] < y.range[0] ? -1 : x.range[0] > y.range[0] ? 1 : 0))
    // Sorted by start: an entry can only overlap those before it whose range reaches it.
    for (let i = 0; i < group.length; i++) {
      for (let j = i - 1; j >= 0; j--) {
        const [earlier, current] = [group[j]!, group[i]!]
        if (earlier.l.service.cidr.family !== current.l.service.cidr.family) break
        if (earlier.range[1] < current.range[0]) continue
        if (overlaps(earlier.l.service, current.l.service)) {
          const other = `${earlier.l.variable === current.l.variable ? '' : `${earlier.l.variable} `}${JSON.stringify(`${earlier.l.where}${earlier.l.text}`)}`
          throw new ConfigError(current.l.variable, `${current.l.where}${current.l.text}`, `entries that do not overlap; it overlaps ${other}`)
        }
      }
    }
  }
}

/** The services named in ISTIO_SERVICES' text, in order. Pure; throws ConfigError. */
export const parseServiceList = (text: string, variable: string): Located[] =>
  parseServiceEntries(
    (text.trim() === '' ? [] : text.split(',')).map(t => ({ text: t.trim(), at: '' })),
    variable,
    text,
  )

/** One line of a services file, `at` saying where it is ("line 3: "); undefined for a blank or comment line. Pure. */
export const parseServiceLine = (line: string, at: string, variable: string): Located | undefined => {
  const text = line.replace(/#.*/, '').trim()
  return text === '' ? undefined : parseServiceEntries([{ text, at }], variable)[0]
}

/** The services in a services file: one per line, `#` starts a comment. Pure; throws ConfigError naming the line. */
export const parseServiceFile = (content: string, variable: string): Located[] =>
  content.split('\n').flatMap((line, i) => parseServiceLine(line, `line ${i + 1}: `, variable) ?? [])
