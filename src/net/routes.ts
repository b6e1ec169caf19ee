// The namespace's routes as any process may read them, with no capability: /proc/net/route (IPv4, the main table)
// and /proc/net/ipv6_route. validate uses them to find, for each interface the pod can send out of, a destination
// the kernel routes out of it, since an unprivileged socket cannot pick its interface: SO_BINDTODEVICE would, but a
// bound socket's REDIRECTed SYN is routed to 127.0.0.1 by that interface and dropped (seen on kernel 6.18).

import { readFile } from 'node:fs/promises'
import { endianness } from 'node:os'
import { cidrRange, formatIpv6, parseCidr } from '../settings/cidr.js'
import type { Cidr, Family } from '../settings/types.js'

export interface Route {
  readonly family: Family
  readonly iface: string
  readonly destination: Cidr
}

// linux/route.h and linux/ipv6_route.h
const RTF_UP = 0x1
const RTF_REJECT = 0x200
const RTF_ANYCAST = 0x100000
const RTF_LOCAL = 0x80000000

const hexBytes = (hex: string): number[] => Array.from({ length: hex.length / 2 }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16))

const prefixOfMask = (mask: readonly number[]): number => mask.reduce((bits, b) => bits + b.toString(2).replace(/0/g, '').length, 0)

/**
 * parseIpv4Routes reads /proc/net/route: the kernel prints each address as the hex of its 32-bit value in the host's
 * byte order, so `littleEndian` says how to read it. Routes that are down or reject are left out. Pure.
 */
export const parseIpv4Routes = (text: string, littleEndian: boolean): Route[] =>
  text
    .split('\n')
    .slice(1)
    .flatMap(line => {
      const [iface, dest, , flags, , , , mask] = line.trim().split(/\s+/)
      if (!iface || !dest || !flags || !mask || !/^[0-9A-F]{8}$/i.test(dest) || !/^[0-9A-F]{8}$/i.test(mask)) return []
      const f = Number.parseInt(flags, 16)
      if (!(f & RTF_UP) || f & RTF_REJECT) return []
      const order = (bytes: number[]): number[] => (littleEndian ? bytes.reverse() : bytes)
      const cidr = parseCidr(`${order(hexBytes(dest)).join('.')}/${prefixOfMask(order(hexBytes(mask)))}`)
      return cidr ? [{ family: 'ipv4' as const, iface, destination: cidr }] : []
    })

/**
 * parseIpv6Routes reads /proc/net/ipv6_route (destination, its prefix, source, its prefix, next hop, metric, use,
 * refs, flags, device). Left out: loopback, local, anycast, reject and down routes, multicast, and link-local
 * (fe80::/10: no destination there is usable without a zone). Pure.
 */
export const parseIpv6Routes = (text: string): Route[] =>
  text.split('\n').flatMap(line => {
    const fields = line.trim().split(/\s+/)
    const [dest, len] = fields
    const flags = fields[8]
    const iface = fields[9]
    if (!dest || !len || !flags || !iface || iface === 'lo' || !/^[0-9a-f]{32}$/i.test(dest)) return []
    const f = Number.parseInt(flags, 16)
    if (!(f & RTF_UP) || f & (RTF_REJECT | RTF_ANYCAST | RTF_LOCAL)) return []
    const cidr = parseCidr(`${formatIpv6(hexBytes(dest))}/${Number.parseInt(len, 16)}`)
    if (!cidr || cidr.address.startsWith('ff') || /^fe[89ab]/.test(cidr.address)) return []
    return [{ family: 'ipv6' as const, iface, destination: cidr }]
  })

/** readRoutes reads the family's routes from /proc; none when the file cannot be read (IPv6 disabled, say). */
export const readRoutes = async (family: Family): Promise<Route[]> => {
  const file = family === 'ipv4' ? '/proc/net/route' : '/proc/net/ipv6_route'
  const text = await readFile(file, 'utf8').catch(() => '')
  return family === 'ipv4' ? parseIpv4Routes(text, endianness() === 'LE') : parseIpv6Routes(text)
}

const contains = (cidr: Cidr, address: bigint): boolean => {
  const [first, last] = cidrRange(cidr)
  return address >= first && address <= last
}

const numberOf = (address: string): bigint | undefined => {
  const cidr = parseCidr(address)
  return cidr && cidrRange(cidr)[0]
}

/** routeOf is the route the kernel's main table picks for `address` (longest prefix), if any. Pure. */
export const routeOf = (routes: readonly Route[], address: string): Route | undefined => {
  const value = numberOf(address)
  if (value === undefined) return undefined
  const family: Family = address.includes(':') ? 'ipv6' : 'ipv4'
  return routes
    .filter(r => r.family === family && contains(r.destination, value))
    .reduce<Route | undefined>((best, r) => (best === undefined || r.destination.prefix > best.destination.prefix ? r : best), undefined)
}

/** addressIn is the address at `offset` from the start of `cidr` (wrapping inside it), as text. Pure. */
export const addressIn = (cidr: Cidr, offset: bigint): string => {
  const [first, last] = cidrRange(cidr)
  const value = first + (offset % (last - first + 1n))
  const count = cidr.family === 'ipv4' ? 4 : 16
  const bytes = Array.from({ length: count }, (_, i) => Number((value >> BigInt(8 * (count - 1 - i))) & 0xffn))
  return cidr.family === 'ipv4' ? bytes.join('.') : formatIpv6(bytes)
}
