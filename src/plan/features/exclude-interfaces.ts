// ISTIO_EXCLUDE_INTERFACES: nothing that arrives on these interfaces is captured, in either family, and what leaves
// by them is exempt as ISTIO_EXCLUDE_INTERFACES_SCOPE says. Matched by name, so an interface created after init is
// covered as soon as it has that name.
// Why not everything that leaves by one (Istio's way, scope `all`): which interface a packet leaves by is the
// sender's choice as much as the routes'. An app binds its socket to the interface (SO_BINDTODEVICE needs no
// capability since Linux 5.7), or a policy rule routes its UID through it, and then reaches any destination the
// link will carry, uncaptured. With scope `routes` the exemption is only for the destinations the interface's own
// routes in the main table cover, as read at init: the traffic the interface is there for. Anything else leaving by
// it is captured; a bound socket's redirected SYN cannot reach the proxy's loopback address, so that connection
// fails instead of escaping.

import { formatCidr } from '../../settings/cidr.js'
import type { Settings } from '../../settings/types.js'
import type { Match, Rule } from '../types.js'
import type { Feature } from './types.js'

const RETURN = { kind: 'return' } as const

/** routedInterfaces: the interfaces whose routes the plan needs read from the host (scope `routes`), none otherwise. Pure. */
export const routedInterfaces = (settings: Settings): readonly string[] =>
  settings.excludeInterfacesScope === 'routes' ? settings.excludeInterfaces : []

export const excludeInterfaces: Feature = (settings, family, facts) => ({
  inboundBypass: settings.excludeInterfaces.map(
    (name): Rule => ({
      purpose: 'inbound-exclude-interface',
      protocol: 'tcp',
      matches: [{ kind: 'in-interface', name }],
      target: RETURN,
    }),
  ),
  outboundBypass: settings.excludeInterfaces.flatMap((name): Rule[] => {
    const out: Match = { kind: 'out-interface', name }
    if (settings.excludeInterfacesScope === 'all') return [{ purpose: 'outbound-exclude-interface', protocol: 'tcp', matches: [out], target: RETURN }]
    const all = (facts.interfaceRoutes?.get(name) ?? []).filter(c => c.family === family)
    const routes = all.filter((c, i) => all.findIndex(d => formatCidr(d) === formatCidr(c)) === i)
    return routes.map(cidr => ({
      purpose: 'outbound-exclude-interface',
      protocol: 'tcp',
      matches: [{ kind: 'destination', cidr }, out],
      target: RETURN,
    }))
  }),
})
