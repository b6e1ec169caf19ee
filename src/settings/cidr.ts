// CIDR parsing into the exact text iptables-save prints back (host bits cleared, IPv6 compressed the way
// glibc's inet_ntop does it), so a read-back can be compared with the plan as plain strings.

import type { Cidr, Family } from './types.js'

/**
 * Parses dotted IPv4 text (four decimal bytes, no leading zeros) into its bytes, or undefined. A hand-written scan
 * rather than a regex and four conversions: a services file runs to 100,000 addresses.
 */
export const parseIpv4 = (text: string): number[] | undefined => {
  const bytes: number[] = []
  let value = 0
  let digits = 0
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46 // a final '.' closes the last byte
    if (c >= 48 && c <= 57) {
      // A leading zero makes a second digit non-canonical ("01"), which inet_pton would not print back.
      if (digits === 1 && value === 0) return undefined
      value = value * 10 + (c - 48)
      if (++digits > 3 || value > 255) return undefined
    } else if (c === 46 && digits > 0 && bytes.length < 4) {
      bytes.push(value)
      value = 0
      digits = 0
    } else return undefined
  }
  return bytes.length === 4 ? bytes : undefined
}

/** Parses IPv6 text into 16 bytes, or undefined. Accepts '::' compression and a trailing dotted IPv4. */
export const parseIpv6 = (text: string): number[] | undefined => {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.split('::').length > 2) return undefined
  const [head = '', tail] = text.split('::')
  const groups = (part: string): number[] | undefined => {
    if (part === '') return []
    const out: number[] = []
    const pieces = part.split(':')
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece)
        if (!v4) return undefined
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0))
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(parseInt(piece, 16))
      } else {
        return undefined
      }
    }
    return out
  }
  const left = groups(head)
  const right = tail === undefined ? [] : groups(tail)
  if (!left || !right) return undefined
  const missing = 8 - left.length - right.length
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined
  const words = [...left, ...Array<number>(tail === undefined ? 0 : missing).fill(0), ...right]
  return words.flatMap(w => [w >> 8, w & 0xff])
}

/** Formats 16 address bytes as inet_ntop does. */
export const formatIpv6 = (bytes: readonly number[]): string => {
  const words = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0))
  // inet_ntop prints IPv4-mapped addresses, and IPv4-compatible ones (six zero words, then not zero), with a
  // dotted tail: `::ffff:198.18.0.1`, `::198.18.0.1`.
  if (words.slice(0, 5).every(w => w === 0) && words[5] === 0xffff) {
    return `::ffff:${bytes.slice(12).join('.')}`
  }
  if (words.slice(0, 6).every(w => w === 0) && words[6] !== 0) return `::${bytes.slice(12).join('.')}`
  // Compress the first longest run of two or more zero words, as inet_ntop does.
  let best = { start: -1, length: 0 }
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && words[j] === 0) j++
    if (j - i > best.length) best = { start: i, length: j - i }
    i = j
  }
  const hex = words.map(w => w.toString(16))
  if (best.length < 2) return hex.join(':')
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`
}

const clearHostBits = (bytes: readonly number[], prefix: number): number[] =>
  bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i))
    return b & ((0xff << (8 - keep)) & 0xff)
  })

/** Parses `address[/prefix]` of either family; undefined when it is not one. */
export const parseCidr = (text: string): Cidr | undefined => {
  const [address = '', prefixText, ...rest] = text.split('/')
  if (rest.length > 0) return undefined
  const v4 = parseIpv4(address)
  const bytes = v4 ?? parseIpv6(address)
  if (!bytes) return undefined
  const family: Family = v4 ? 'ipv4' : 'ipv6'
  const bits = bytes.length * 8
  if (prefixText !== undefined && !/^(0|[1-9]\d{0,2})$/.test(prefixText)) return undefined
  const prefix = prefixText === undefined ? bits : Number(prefixText)
  if (prefix > bits) return undefined
  const network = clearHostBits(bytes, prefix)
  return { family, address: v4 ? network.join('.') : formatIpv6(network), prefix }
}

export const formatCidr = (cidr: Cidr): string => `${cidr.address}/${cidr.prefix}`

const addressValue = (cidr: Cidr): bigint => {
  const bytes = cidr.family === 'ipv4' ? cidr.address.split('.').map(Number) : (parseIpv6(cidr.address) ?? [])
  return bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n)
}

/**
 * cidrSpan is cidrRange with plain numbers for IPv4 (exact below 2^53): comparing them is much cheaper than
 * bigints when 100,000 services are sorted. Only compare spans of one family with each other. Pure.
 */
export const cidrSpan = (cidr: Cidr): [number, number] | [bigint, bigint] => {
  if (cidr.family === 'ipv6') return cidrRange(cidr)
  const start = cidr.address.split('.').reduce((v, b) => v * 256 + Number(b), 0)
  return [start, start + 2 ** (32 - cidr.prefix) - 1]
}

/** cidrRange is the first and last address a CIDR covers, as numbers. Pure. */
export const cidrRange = (cidr: Cidr): [bigint, bigint] => {
  const bits = cidr.family === 'ipv4' ? 32n : 128n
  const start = addressValue(cidr)
  return [start, start + (1n << (bits - BigInt(cidr.prefix))) - 1n]
}
