// The services the explicit method captures: `CIDR[:port[-port]]` entries, from ISTIO_SERVICES (comma-separated)
// and ISTIO_SERVICES_FILE (one per line, `#` comments). An IPv6 address takes brackets when a port follows:
// `[2001:db8::/32]:443`. Entries are refused with their line and text, and so are entries that overlap another
// of the same kind (nftables' interval sets refuse overlaps, and an overlap is a mistake in the list anyway).

import { ConfigError } from '../errors.js'
import { cidrSpan, formatCidr, parseCidr } from './cidr.js'
import type { PortRange, Service } from './types.js'
import { portRangeText } from '../text.js'

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
  const ports = portRangeText(s.ports, '-')
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
    if (!service)
      throw new ConfigError(
        variable,
        whole ?? `${at}${text}`,
        `${ACCEPTED} (port ranges under ${MAX_RANGE} ports); ${JSON.stringify(text)} is not one`,
      )
    return { service, variable, where: at, text }
  })

interface Span {
  readonly l: Located
  readonly start: number | bigint
  readonly end: number | bigint
}

/** Earlier entries with one address range (CIDRs nest or are apart), their port ranges in `from` order. */
interface Open {
  readonly start: number | bigint
  readonly end: number | bigint
  readonly entries: Located[]
  /** The highest `to` among entries[0..i], so a binary search on `from` finds an overlap in O(log n). */
  readonly maxTo: number[]
}

const ALL_PORTS: PortRange = { from: 1, to: 65535 }

/** The first entry of `open` whose ports overlap `ports`, if any. */
const portClash = (open: Open, ports: PortRange): Located | undefined => {
  // The last entry whose range starts at or below ports.to; any overlap is at or before it.
  let [lo, hi] = [0, open.entries.length - 1]
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if ((open.entries[mid]!.service.ports ?? ALL_PORTS).from <= ports.to) lo = mid + 1
    else hi = mid - 1
  }
  if (hi < 0 || open.maxTo[hi]! < ports.from) return undefined
  return open.entries.slice(0, hi + 1).find(e => (e.service.ports ?? ALL_PORTS).to >= ports.from)
}

const clash = (current: Located, earlier: Located): ConfigError => {
  const other = `${earlier.variable === current.variable ? '' : `${earlier.variable} `}${JSON.stringify(`${earlier.where}${earlier.text}`)}`
  return new ConfigError(current.variable, `${current.where}${current.text}`, `entries that do not overlap; it overlaps ${other}`)
}

/**
 * refuseOverlaps throws for two entries of the same kind (with or without ports) that overlap. Pure. Sorted by
 * address, wider first, then by port: CIDRs either nest or are apart, so the earlier entries that can overlap the
 * current one are a stack of at most 129 nested ranges, and within one range a binary search over ports finds a
 * clash. O(n log n): comparing every pair is quadratic, far too slow at the 100,000 services bench/scale.mjs runs
 * (docs/performance.md).
 */
export const refuseOverlaps = (located: readonly Located[]): void => {
  for (const withPorts of [false, true]) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      const spans: Span[] = located
        .filter(l => (l.service.ports !== undefined) === withPorts && l.service.cidr.family === family)
        .map(l => {
          const [start, end] = cidrSpan(l.service.cidr)
          return { l, start, end }
        })
        .sort((x, y) =>
          x.start !== y.start
            ? x.start < y.start
              ? -1
              : 1
            : x.end !== y.end
              ? x.end > y.end
                ? -1
                : 1
              : (x.l.service.ports?.from ?? 0) - (y.l.service.ports?.from ?? 0),
        )
      const stack: Open[] = []
      for (const span of spans) {
        while (stack.length > 0 && stack[stack.length - 1]!.end < span.start) stack.pop()
        const ports = span.l.service.ports ?? ALL_PORTS
        for (const open of stack) {
          const earlier = portClash(open, ports)
          if (earlier) throw clash(span.l, earlier)
        }
        const top = stack[stack.length - 1]
        if (top && top.start === span.start && top.end === span.end) {
          top.entries.push(span.l)
          top.maxTo.push(Math.max(top.maxTo[top.maxTo.length - 1]!, ports.to))
        } else stack.push({ start: span.start, end: span.end, entries: [span.l], maxTo: [ports.to] })
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
