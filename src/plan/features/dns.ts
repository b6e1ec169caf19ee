// ISTIO_DNS_CAPTURE: UDP and TCP to port 53 of the resolv.conf nameservers (resolv-conf) or of any address (all)
// go to the proxy's DNS port (ISTIO_DNS_PORT); the proxy's own queries, told apart by the active method's
// identity, go out to the nameserver. Its own nat chain runs ahead of the TCP capture, so TCP to port 53 reaches
// the DNS port, not the proxy port, and the outbound exclusions do not apply to it.
//
// Why conntrack zones. The app's query app:P -> ns:53 is redirected, so its conntrack entry (zone 0) expects the
// reply 127.0.0.1:DNS_PORT -> app:P, and rewrites that reply's source back to ns:53. The proxy then forwards the
// query itself, from a source port of its own choosing. UDP sockets are not connected, so nothing stops it picking
// P: its packet pod:P -> ns:53 is the original tuple of the app's entry, conntrack takes it for the app's flow,
// and NAT sends the proxy's forwarded query back to the proxy (a loop). In the other order (the proxy's query
// first), the app's query joins the proxy's un-NATed entry and escapes capture, and the app gets its answer from
// the proxy's flow. Two zones keep the flows apart, set in raw (before conntrack looks the packet up):
// - zone 1, the proxy's side: its queries to the nameserver, and the nameserver's answers as they come in;
// - zone 2, the app's side: the app's queries, and the proxy's answers to them (from the DNS port on loopback).
// Then each direction of each flow meets its own entry, so the app's answer leaves the proxy with the nameserver's
// address and port restored as its source (the resolver drops an answer from any other address). The first zone
// rule a packet matches decides (a later one is ignored: the packet already has its conntrack template), so the
// proxy's own query, which also matches the app's rule, is in zone 1.
// TCP is redirected too but not zoned. It needs no zone: its sockets are connected, so the kernel never gives the
// proxy a 4-tuple the app's socket holds, and a SYN reusing one whose entry lingers (TIME_WAIT) makes conntrack
// start a new entry. And a zone would hurt: SO_ORIGINAL_DST looks connections up in the default zone only, so a
// zoned TCP flow would hide its original destination from the proxy (the live probe's TCP check showed it).

import type { Cidr, Family, Settings } from '../../settings/types.js'
import { DNS_CHAIN, DNS_ZONE_IN_CHAIN, DNS_ZONE_OUT_CHAIN, type Purpose } from '../owned.js'
import { chainOf, proxyIdentities } from '../parts.js'
import type { Match, Protocol, Rule, Target } from '../types.js'
import type { Feature } from './types.js'

export const DNS_PORT = 53
/** The proxy's flows to the nameserver. */
export const PROXY_ZONE = 1
/** The app's flows to the nameserver, redirected to the proxy. */
export const APP_ZONE = 2

const PROTOCOLS: readonly Protocol[] = ['udp', 'tcp']
const LOOPBACK: Record<Family, Cidr> = {
  ipv4: { family: 'ipv4', address: '127.0.0.1', prefix: 32 },
  ipv6: { family: 'ipv6', address: '::1', prefix: 128 },
}

const port = (p: number): readonly [{ from: number; to: number }] => [{ from: p, to: p }]

/** One rule per protocol. */
const both = (purpose: Purpose, matches: readonly Match[], target: Target): Rule[] =>
  PROTOCOLS.map(protocol => ({ purpose, protocol, matches, target }))

/** A zone rule: UDP only. */
const udp = (purpose: Purpose, matches: readonly Match[], zone: number): Rule[] => [
  { purpose, protocol: 'udp', matches, target: { kind: 'ct-zone', zone } },
]

export const dns: Feature = (settings: Settings, family: Family) => {
  if (settings.dnsCapture === 'off') return {}
  // Each captured nameserver's address, or (all) none: any address.
  const servers: (Cidr | undefined)[] = settings.dnsCapture === 'all' ? [undefined] : settings.nameservers.filter(c => c.family === family)
  if (servers.length === 0) return {}
  const to = (ns: Cidr | undefined): Match[] => [
    ...(ns ? [{ kind: 'destination', cidr: ns } as const] : []),
    { kind: 'dport', ports: port(DNS_PORT) },
  ]
  const from = (ns: Cidr | undefined): Match[] => [...(ns ? [{ kind: 'source', cidr: ns } as const] : []), { kind: 'sport', ports: port(DNS_PORT) }]
  const ids = proxyIdentities(settings)
  return {
    chains: [
      chainOf(
        DNS_ZONE_IN_CHAIN,
        servers.flatMap(ns => udp('dns-upstream-answer', from(ns), PROXY_ZONE)),
      ),
      chainOf(DNS_ZONE_OUT_CHAIN, [
        ...ids.flatMap(id => servers.flatMap(ns => udp('dns-proxy-query', [id.match, ...to(ns)], PROXY_ZONE))),
        ...udp(
          'dns-proxy-answer',
          [
            { kind: 'source', cidr: LOOPBACK[family] },
            { kind: 'sport', ports: port(settings.dnsPort) },
          ],
          APP_ZONE,
        ),
        ...servers.flatMap(ns => udp('dns-app-query', to(ns), APP_ZONE)),
      ]),
      chainOf(DNS_CHAIN, [
        ...ids.flatMap(id => both(id.purpose, [id.match], { kind: 'return' })),
        ...servers.flatMap(ns => both('dns-capture', to(ns), { kind: 'redirect', port: settings.dnsPort })),
      ]),
    ],
  }
}
