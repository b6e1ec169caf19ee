// The explicit method's service sets for the iptables backends, as ipset restore input. Each set is filled as a
// fresh copy and swapped in: the swap is atomic, so a changed list never leaves a moment without capture.

import { ipsetName } from './owned.js'
import type { ServiceSet } from './types.js'

const hostless = (address: string, prefix: number, family: string): string =>
  prefix === (family === 'ipv4' ? 32 : 128) ? address : `${address}/${prefix}`

/** ipsetMembers lists a set's members as `ipset save` prints them (port ranges expanded), sorted. Pure. */
export const ipsetMembers = (set: ServiceSet): string[] =>
  set.services
    .flatMap(s => {
      const address = hostless(s.cidr.address, s.cidr.prefix, s.cidr.family)
      if (!s.ports) return [address]
      return Array.from({ length: s.ports.to - s.ports.from + 1 }, (_, i) => `${address},tcp:${s.ports!.from + i}`)
    })
    .sort()

// Sized for its members from the start: a hash that grows while 10,000 members are added ends up slower to search.
const typeOf = (set: ServiceSet, members: number): string => {
  const hashsize = 2 ** Math.ceil(Math.log2(Math.max(1024, members)))
  return `${set.withPorts ? 'hash:net,port' : 'hash:net'} family ${set.family === 'ipv4' ? 'inet' : 'inet6'} hashsize ${hashsize} maxelem ${Math.max(65536, members)}`
}

/** renderIpsetSwap is the one `ipset restore` payload that puts every set's planned members in place. Pure. */
export const renderIpsetSwap = (sets: readonly ServiceSet[]): string =>
  sets
    .flatMap(set => {
      const name = ipsetName(set.family, set.withPorts)
      const next = `${name}-next`
      const members = ipsetMembers(set)
      const type = typeOf(set, members.length)
      return [`create ${next} ${type} -exist`, `flush ${next}`, ...members.map(m => `add ${next} ${m}`), `create ${name} ${type} -exist`, `swap ${next} ${name}`, `destroy ${next}`]
    })
    .join('\n')
    .concat('\n')

/** Members of each of our sets in `ipset save` output, by set name. Pure. */
export const parseIpsetSave = (text: string): Map<string, string[]> => {
  const sets = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const [verb, name, member] = line.split(' ')
    if (verb === 'create' && name) sets.set(name, [])
    else if (verb === 'add' && name && member !== undefined) sets.get(name)?.push(member)
  }
  for (const members of sets.values()) members.sort()
  return sets
}

