// ISTIO_DNS_CAPTURE: UDP and TCP to port 53 of the resolv.conf nameservers (resolv-conf) or of any address (all)
// go to the proxy's DNS port (ISTIO_DNS_PORT); the proxy's own queries, told apart by the active method's
// identity, go out to the nameserver. Its own nat chain runs ahead of the TCP capture, so TCP to port 53 reaches
// the DNS port, not the proxy port, and the outbound exclusions do not apply to it.
//
// Why conntrack zones. The app's query app:P -> ns:53 is redirected, so its conntrack entry expects the reply
// 127.0.0.1:DNS_PORT -> app:P, and rewrites that reply's source back to ns:53. The proxy then forwards the query
// itself, from a source port of its own choosing. UDP sockets are not connected, so nothing stops it picking P:
// its packet pod:P -> ns:53 is the original tuple of the app's entry, conntrack takes it for the app's flow, and
// NAT sends the proxy's forwarded query back to the proxy (a loop). In the other order (the proxy's query first),
// the app's query joins the proxy's un-NATed entry and escapes capture. So, in raw OUTPUT (before conntrack looks
// the packet up), the proxy's queries get zone 1 and the app's zone 2: two flows with one original tuple, apart.
// The zones are set for the original direction only (`CT --zone-orig`, nft `ct original zone set`), and that is
// what keeps everything else as it was:
// - a new flow's reply direction stays in the default zone, so the nameserver's answers and the proxy's answers
//   (from the DNS port on loopback) find their flow with no rule of ours, whatever their addresses;
// - a packet of a flow that already exists, sent in its reply direction, is found in the default zone too: the
//   app's UDP service answering a client whose source port is 53 matches the app-query rule, yet its packet joins
//   the client's flow (zone 0 both ways), is not new, and so is never redirected. With a zone for both directions
//   it would have been a new flow in zone 2, redirected to the proxy.
// The first zone rule a packet matches decides (a later one is ignored: the packet already has its conntrack
// template), so the proxy's own query, which also matches the app's rule, is in zone 1.
// TCP is redirected too but not zoned. It needs no zone: its sockets are connected, so the kernel never gives the
// proxy a 4-tuple the app's socket holds, and a SYN reusing one whose entry lingers (TIME_WAIT) makes conntrack
// start a new entry. And a zone would hurt: SO_ORIGINAL_DST looks connections up in the default zone only, so a
// zoned TCP flow would hide its original destination from the proxy (the live probe's TCP check showed it).

import type { Cidr, Family, Settings } from '../../settings/types.js'
import { DNS_CHAIN, DNS_ZONE_OUT_CHAIN, type Purpose } from '../owned.js'
import { chainOf, proxyIdentities } from '../parts.js'
import type { Match, Protocol, Rule, Target } from '../types.js'
import type { Feature } from './types.js'

export const DNS_PORT = 53
/** The proxy's flows to the nameserver. */
export const PROXY_ZONE = 1
/** The app's flows to the nameserver, redirected to the proxy. */
export const APP_ZONE = 2

const PROTOCOLS: readonly Protocol[] = ['udp', 'tcp']

const port = (p: number): readonly [{ from: number; to: number }] => [{ from: p, to: p }]

/** One rule per protocol. */
const both = (purpose: Purpose, matches: readonly Match[], target: Target): Rule[] =>
  PROTOCOLS.map(protocol => ({ purpose, protocol, matches, target }))

/** A zone rule (the original direction's zone): UDP only. */
const udp = (purpose: Purpose, matches: readonly Match[], zone: number): Rule[] => [
  { purpose, protocol: 'udp', matches, target: { kind: 'ct-zone', zone, direction: 'original' } },
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
  const ids = proxyIdentities(settings)
  return {
    chains: [
      chainOf(DNS_ZONE_OUT_CHAIN, [
        ...ids.flatMap(id => servers.flatMap(ns => udp('dns-proxy-query', [id.match, ...to(ns)], PROXY_ZONE))),
        ...servers.flatMap(ns => udp('dns-app-query', to(ns), APP_ZONE)),
      ]),
      chainOf(DNS_CHAIN, [
        ...ids.flatMap(id => both(id.purpose, [id.match], { kind: 'return' })),
        ...servers.flatMap(ns => both('dns-capture', to(ns), { kind: 'redirect', port: settings.dnsPort })),
      ]),
    ],
  }
}
