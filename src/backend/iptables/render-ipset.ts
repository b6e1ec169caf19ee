// The explicit method's service sets for the iptables backends, as ipset restore input. Each set is filled as a
// fresh copy and swapped in: the swap is atomic, so a changed list never leaves a moment without capture.

import { byCodeUnits } from '../../order.js'
import { ipsetName, ipsetNextName } from '../../plan/owned.js'
import type { ServiceSet } from '../../plan/types.js'

const hostless = (address: string, prefix: number, family: string): string =>
  prefix === (family === 'ipv4' ? 32 : 128) ? address : `${address}/${prefix}`

// ipset's hash:net takes prefixes from 1 up ("The value of the CIDR parameter ... is invalid" for /0), so a /0
// service is stored as the two halves of its family's space.
const HALVES: Readonly<Record<string, readonly string[]>> = { ipv4: ['0.0.0.0/1', '128.0.0.0/1'], ipv6: ['::/1', '8000::/1'] }

const addresses = (cidr: ServiceSet['services'][number]['cidr']): readonly string[] =>
  cidr.prefix === 0 ? HALVES[cidr.family]! : [hostless(cidr.address, cidr.prefix, cidr.family)]

// Apply renders, counts and reads back the same members: listed and sorted once per set (at 100,000
// members each listing is a visible part of apply: docs/performance.md).
const listed = new WeakMap<ServiceSet, readonly string[]>()

/** ipsetMembers lists a set's members as `ipset save` prints them (port ranges expanded), sorted. Pure. */
export const ipsetMembers = (set: ServiceSet): readonly string[] => {
  const known = listed.get(set)
  if (known !== undefined) return known
  const members = set.services
    .flatMap(s =>
      addresses(s.cidr).flatMap(address =>
        s.ports ? Array.from({ length: s.ports.to - s.ports.from + 1 }, (_, i) => `${address},tcp:${s.ports!.from + i}`) : [address],
      ),
    )
    .sort(byCodeUnits)
  listed.set(set, members)
  return members
}

// Sized for its members from the start: a hash that grows while 10,000 members are added ends up slower to search.
// `comment` (room for a comment per member, none used) marks the set as ours: ipset has no comment on a set itself.
const typeOf = (set: Pick<ServiceSet, 'family' | 'withPorts'>, members: number): string => {
  const hashsize = 2 ** Math.ceil(Math.log2(Math.max(1024, members)))
  return `${set.withPorts ? 'hash:net,port' : 'hash:net'} family ${set.family === 'ipv4' ? 'inet' : 'inet6'} hashsize ${hashsize} maxelem ${Math.max(65536, members)} comment`
}

const names = (set: Pick<ServiceSet, 'family' | 'withPorts'>): { name: string; next: string } => {
  const name = ipsetName(set.family, set.withPorts)
  return { name, next: ipsetNextName(name) }
}

const payload = (lines: readonly string[]): string => `${lines.join('\n')}\n`

/**
 * renderIpsetSwap is the one `ipset restore` payload that puts every set's planned members in place: each is
 * filled as `<name>-next` and swapped in. The old members stay in `-next` until the rules are applied, so a
 * refused transaction is undone by swapping back (renderIpsetUndo), without listing them first. Pure.
 */
export const renderIpsetSwap = (sets: readonly ServiceSet[]): string =>
  payload(
    sets.flatMap(set => {
      const { name, next } = names(set)
      const members = ipsetMembers(set)
      const type = typeOf(set, members.length)
      return [
        `create ${next} ${type} -exist`,
        `flush ${next}`,
        ...members.map(m => `add ${next} ${m}`),
        `create ${name} ${type} -exist`,
        `swap ${next} ${name}`,
      ]
    }),
  )

/** renderIpsetDone drops the old members once the rules that use the new ones are in place. Pure. */
export const renderIpsetDone = (sets: readonly ServiceSet[]): string => payload(sets.map(set => `destroy ${names(set).next}`))

export interface SavedSet {
  /** The create line after the name: type, family and options. */
  readonly header: string
  readonly members: readonly string[]
}

/** renderIpsetUndo swaps the old members back; a set that was not there before (`existed`) goes entirely. Pure. */
export const renderIpsetUndo = (sets: readonly ServiceSet[], existed: ReadonlySet<string>): string =>
  payload(
    sets.flatMap(set => {
      const { name, next } = names(set)
      return [`swap ${next} ${name}`, `destroy ${next}`, ...(existed.has(name) ? [] : [`destroy ${name}`])]
    }),
  )

/**
 * Every set in `ipset save` output, by name, with its members in the order ipset printed them (its hash order:
 * compare them as sets). Lines are cut at their first two spaces, not split into words: 100,000 members. Pure.
 */
export const parseIpsetSave = (text: string): Map<string, SavedSet> => {
  const sets = new Map<string, { header: string; members: string[] }>()
  for (const line of text.split('\n')) {
    const first = line.indexOf(' ')
    const second = line.indexOf(' ', first + 1)
    if (first < 0 || second < 0) continue
    const [verb, name, rest] = [line.slice(0, first), line.slice(first + 1, second), line.slice(second + 1)]
    if (verb === 'create' && name) sets.set(name, { header: rest, members: [] })
    else if (verb === 'add' && name && rest !== '') sets.get(name)?.members.push(rest)
  }
  return sets
}

/** The sets in `ipset list -t` output (headers only, no members: cheap however large the sets), by name. Pure. */
export const parseIpsetTerse = (text: string): Map<string, SavedSet> => {
  const sets = new Map<string, SavedSet>()
  let name: string | undefined
  let type = ''
  for (const line of text.split('\n')) {
    if (line.startsWith('Name: ')) name = line.slice('Name: '.length)
    else if (line.startsWith('Type: ')) type = line.slice('Type: '.length)
    else if (line.startsWith('Header: ') && name !== undefined) sets.set(name, { header: `${type} ${line.slice('Header: '.length)}`, members: [] })
  }
  return sets
}

/** A set with one of our names is ours only if it has our type and our marker. Pure. */
export const isOwnedIpset = (set: SavedSet): boolean => /^hash:net(?:,port)? family inet6? .*\bcomment\b/.test(set.header)
