// validate's checks beyond the pod's own addresses: for each interface the pod routes anything out of, in each
// family, an app connection to a destination the kernel sends out of that interface must land on the proxy port
// with SO_ORIGINAL_DST naming it, on each of a few ports. The destinations come from the routes (a documentation or
// discard address for a default route, a neighbour for a subnet) and from the plan's own capture rules (an address
// of each included CIDR or listed service), and only those the plan captures are tried: a captured SYN never leaves
// the pod, so a destination is only reached when capture is broken, which is the failure being looked for.

import { networkInterfaces } from 'node:os'
import { connectSocket } from '../net/socket.js'
import { addressIn, readRoutes, type Route, routeOf } from '../net/routes.js'
import { OUTBOUND_CHAIN } from '../plan/owned.js'
import type { FamilyPlan } from '../plan/types.js'
import { parseCidr } from '../settings/cidr.js'
import type { Cidr, Family } from '../settings/types.js'
import { fateOf } from './fate.js'
import { bracket, type Check, closeAll, type Identity, land, openProxy, where } from './landing.js'

/** Ports every destination is tried on besides its own: the web's, which an exclusion would most want. */
export const COMMON_PORTS: readonly number[] = [80, 443]

// A default route's destination: RFC 5737's documentation networks and RFC 6666's discard-only prefix, which no one
// answers; the first one the default route itself carries (a network may use one of them as its own).
const DEFAULT_DESTINATIONS: Record<Family, readonly string[]> = {
  ipv4: ['203.0.113.1', '198.51.100.1', '192.0.2.1'],
  ipv6: ['100::1', '2001:db8:ffff:ffff::1'],
}

// Enough to cover every interface with a few destinations, few enough that a broken pod fails in about a second.
const MAX_PER_INTERFACE = 8

export interface OwnAddress {
  readonly iface: string
  readonly address: string
}

export interface ReachTarget {
  readonly iface: string
  readonly address: string
  readonly port: number
  readonly proxyPort: number
}

export interface ReachChoice {
  readonly targets: readonly ReachTarget[]
  /** Interfaces with routes where no destination is captured, and why. */
  readonly unchecked: readonly { readonly iface: string; readonly why: string }[]
}

/** A host address inside `cidr` that is not one of ours: the second or third of it, or the address itself. */
const hostIn = (cidr: Cidr, own: ReadonlySet<string>): string | undefined => {
  const bits = cidr.family === 'ipv4' ? 32 : 128
  if (cidr.prefix >= bits - 1) return own.has(cidr.address) ? undefined : cidr.address
  return [1n, 2n, 3n].map(offset => addressIn(cidr, offset)).find(address => !own.has(address))
}

/** Destinations the plan's capture rules name: an address of each included CIDR and listed service. */
const planDestinations = (plan: FamilyPlan, own: ReadonlySet<string>): { address: string; port?: number }[] => {
  const rules = plan.chains.find(c => c.name === OUTBOUND_CHAIN)?.rules ?? []
  return rules
    .filter(r => r.target.kind === 'redirect')
    .flatMap(r =>
      r.matches.flatMap(m => {
        if (m.kind === 'destination') return [{ address: hostIn(m.cidr, own) }]
        if (m.kind !== 'service-set') return []
        const set = plan.sets.find(s => s.family === m.family && s.withPorts === m.withPorts)
        return (set?.services ?? []).slice(0, 16).map(s => ({ address: hostIn(s.cidr, own), ...(s.ports && { port: s.ports.from }) }))
      }),
    )
    .flatMap(d => (d.address === undefined ? [] : [{ ...d, address: d.address }]))
}

/**
 * chooseReachTargets picks, for each interface with a route, the destinations out of it that the plan redirects
 * for a connection by `as`, with the port it redirects them to. Pure: the routes and our addresses are handed in.
 */
export const chooseReachTargets = (
  plan: FamilyPlan,
  routes: readonly Route[],
  own: readonly OwnAddress[],
  as: Identity,
  ports: readonly number[],
): ReachChoice => {
  const family = plan.family
  const ours = new Set(own.map(o => o.address))
  const fromRoutes = routes
    .filter(r => r.family === family)
    .flatMap((r): { address: string; port?: number }[] => {
      const candidates = r.destination.prefix === 0 ? DEFAULT_DESTINATIONS[family] : [hostIn(r.destination, ours)]
      // Only where the kernel would pick this very route (a longer one elsewhere may cover the address).
      const address = candidates.find(a => a !== undefined && routeOf(routes, a) === r)
      return address === undefined ? [] : [{ address }]
    })
  const byIface = new Map<string, ReachTarget[]>()
  for (const r of routes) if (r.family === family && !byIface.has(r.iface)) byIface.set(r.iface, [])
  for (const d of [...fromRoutes, ...planDestinations(plan, ours)]) {
    const route = routeOf(routes, d.address)
    const list = route && byIface.get(route.iface)
    if (!route || !list) continue
    const saddr = own.find(o => o.iface === route.iface)?.address ?? own[0]?.address ?? d.address
    for (const port of d.port === undefined ? ports : [d.port]) {
      if (list.length >= MAX_PER_INTERFACE || list.some(t => t.address === d.address && t.port === port)) continue
      const fate = fateOf(plan, { saddr, daddr: d.address, dport: port, uid: as.uid, gid: as.gid, mark: 0, classid: 0, outInterface: route.iface })
      if (fate.kind === 'redirect') list.push({ iface: route.iface, address: d.address, port, proxyPort: fate.port })
    }
  }
  return {
    targets: [...byIface.values()].flat(),
    unchecked: [...byIface.entries()]
      .filter(([, list]) => list.length === 0)
      .map(([iface]) => ({ iface, why: `the plan captures no destination routed out of ${iface} (the operator's settings may leave it out)` })),
  }
}

const ownAddresses = (family: Family): OwnAddress[] =>
  Object.entries(networkInterfaces()).flatMap(([iface, infos]) =>
    (infos ?? [])
      .filter(i => i.family === (family === 'ipv4' ? 'IPv4' : 'IPv6'))
      .map(i => ({ iface, address: parseCidr(i.address)?.address ?? i.address })),
  )

/** A port from the dynamic range, new each run, so no fixed list of ports is all that is ever tried. */
const randomPort = (): number => 49152 + Math.floor(Math.random() * 16384)

/**
 * probeReach makes the connections chooseReachTargets picks, as this process is, and reports each: passed when it
 * landed on the proxy port with SO_ORIGINAL_DST naming its destination. Needs no privilege.
 */
export const probeReach = async (plan: FamilyPlan, as: Identity, who: string): Promise<Check[]> => {
  const family = plan.family
  const { targets, unchecked } = chooseReachTargets(plan, await readRoutes(family), ownAddresses(family), as, [...COMMON_PORTS, randomPort()])
  const checks: Check[] = unchecked.map(u => ({ name: `out ${u.iface}`, family, status: 'not checked', detail: u.why }))
  const ports = [...new Set(targets.map(t => t.proxyPort))]
  const listeners = await Promise.all(ports.map(port => openProxy(family, port)))
  try {
    const results = await Promise.all(
      targets.map(async (t): Promise<Check> => {
        const name = `out ${t.iface}`
        const to = `${bracket(t.address)}:${t.port}`
        if (!listeners[ports.indexOf(t.proxyPort)])
          return { name, family, status: 'not checked', detail: `port ${t.proxyPort} is in use (is the proxy already running?)` }
        const landing = await land(() => connectSocket(t.address, t.port))
        const ok = landing.on === 'proxy' && landing.originalDst === to
        return {
          name,
          family,
          status: ok ? 'passed' : 'failed',
          detail: `${who} -> ${to} (routed out of ${t.iface}) reached ${where(landing, 'the proxy port')}`,
        }
      }),
    )
    checks.push(...results)
  } finally {
    await closeAll(listeners)
  }
  return checks
}
