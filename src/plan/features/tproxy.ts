// ISTIO_INBOUND_INTERCEPTION_MODE=TPROXY: inbound TCP reaches the proxy without NAT, so its accepted socket's local
// address is the original destination, and it may connect on to the app from the client's own address. In mangle:
// - PREROUTING (SIDECAR_TPROXY): nothing this namespace sent itself over lo (the proxy's own connections to the app,
//   transparent or not, and the app's loopback connections, captured outbound ones included), nothing of an
//   established connection (else the replies to the proxy's own outbound connections are handed to TPROXY, which
//   drops a packet whose socket is not transparent), then the inbound exclusions, then TPROXY to the inbound port
//   with the mark;
// - OUTPUT (SIDECAR_TPROXY_MARK): a connection with a source address not our own is one of the proxy's transparent
//   ones: mark it, and give its packets (the app's replies) the mark, so they are routed to the proxy's socket
//   instead of out to the client's address.
// Beside the rules, policy routing: marked packets look up a table whose one route delivers everything locally.
// The lo exemption asks for a connection conntrack already confirmed, not just the interface: a packet moved onto
// lo from outside (a tc mirred or nft fwd from eth0's ingress) is new there, so it is diverted like any other; one
// our own sockets sent was confirmed on its way out, before lo handed it back. Why not only the proxy's packets,
// by a mark: the app's own loopback connections (and its outbound ones, redirected to the proxy's port on lo)
// arrive on lo as new connections too, and must not be diverted to the inbound port.

import type { Settings } from '../../settings/types.js'
import { CHAIN_HOMES, TPROXY_CHAIN, TPROXY_MARK_CHAIN, TPROXY_RULE_PRIORITY } from '../owned.js'
import type { Chain, LocalRouting, Rule } from '../types.js'
import type { Feature } from './types.js'

/** The policy routing the settings name, whatever the mode: clean removes it even after a switch back to REDIRECT. */
export const tproxyRouting = (settings: Settings): LocalRouting => ({
  priority: TPROXY_RULE_PRIORITY,
  mark: settings.inboundTproxyMark,
  table: settings.inboundTproxyRouteTable,
})

const LEAD: readonly Rule[] = [
  {
    purpose: 'tproxy-loopback',
    protocol: 'tcp',
    matches: [{ kind: 'in-interface', name: 'lo' }, { kind: 'sent-here' }],
    target: { kind: 'return' },
  },
  { purpose: 'tproxy-established', protocol: 'tcp', matches: [{ kind: 'established' }], target: { kind: 'return' } },
]

const markChain = (mark: number): Chain => ({
  name: TPROXY_MARK_CHAIN,
  table: CHAIN_HOMES[TPROXY_MARK_CHAIN].table,
  hook: CHAIN_HOMES[TPROXY_MARK_CHAIN].hook,
  rules: [
    { purpose: 'tproxy-transparent-connection', protocol: 'tcp', matches: [{ kind: 'non-local-source' }], target: { kind: 'connmark-set', mark } },
    { purpose: 'tproxy-reply', protocol: 'tcp', matches: [{ kind: 'connmark', mark }], target: { kind: 'mark-set', mark } },
  ],
})

export const tproxy: Feature = settings => {
  if (settings.inboundInterceptionMode !== 'TPROXY') return {}
  const mark = settings.inboundTproxyMark
  return {
    routing: tproxyRouting(settings),
    inboundCapture: { chain: TPROXY_CHAIN, lead: LEAD, target: port => ({ kind: 'tproxy', port, mark }) },
    chains: [markChain(mark)],
  }
}
