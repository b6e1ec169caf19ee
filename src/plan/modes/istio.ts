// Istio's mode: the rules Istio's `istio-iptables` writes, so every connection lands where Istio's rules land it,
// rendered, applied, read back and checked as ours are. Istio's layout is a tree of chains (ISTIO_OUTPUT jumps to
// ISTIO_REDIRECT and ISTIO_IN_REDIRECT, which each hold one REDIRECT) plus rules in the built-in chains; here each
// hook gets one chain of ours with the same rules in the same order, a jump to a one-rule chain written as that
// rule's target (`-j ISTIO_IN_REDIRECT` is `-p tcp -j REDIRECT --to-ports 15006`), so the plan stays one chain per
// hook. Two moves keep the outcome and are argued where they happen: ISTIO_DIVERT's two rules (mark, accept) are
// written as two rules with the jump's matches, and the CONNMARK --save-mark after the inbound jump in mangle
// PREROUTING comes before the inbound rules.
//
// Families. On iptables Istio writes IPv6 only when IPv6 is enabled (config.enableIpv6). Its native nftables mode
// writes one inet table: a rule that names no address applies to both families whatever IPv6 says, and only the
// rules that name an IPv6 address wait for IPv6 to be enabled. So that flavour always plans both families.
// Pure: no I/O, env or clock.

import type { IstioConfig } from '../../settings/istio/types.js'
import type { Cidr, Family, PortRange } from '../../settings/types.js'
import {
  ISTIO_INBOUND_CHAIN,
  ISTIO_INBOUND_DNS_CHAIN,
  ISTIO_INBOUND_MANGLE_CHAIN,
  ISTIO_OUTPUT_CHAIN,
  ISTIO_OUTPUT_DNS_CHAIN,
  ISTIO_OUTPUT_MANGLE_CHAIN,
  TPROXY_RULE_PRIORITY,
  type Purpose,
} from '../owned.js'
import { chainOf } from '../parts.js'
import type { Chain, FamilyPlan, Match, NegatableMatch, Plan, Rule, RuleProtocol, Target } from '../types.js'

/** Which of Istio's two programs the rules follow: istio-iptables, or its native nftables mode. */
export type IstioFlavour = 'iptables' | 'nftables'

/** The mark Istio gives the proxy's connections to its own pod over lo in TPROXY mode (its OutboundMark). */
export const ISTIO_OUTBOUND_MARK = 1338
/** The port of istio-agent's DNS proxy. */
export const ISTIO_DNS_PORT = 15053
const DNS = 53

const host = (family: Family, address: string): Cidr => ({ family, address, prefix: family === 'ipv4' ? 32 : 128 })
/** The source the proxy binds for inbound passthrough to the app: 127.0.0.6, and ::6 (put on lo) for IPv6. */
export const PASSTHROUGH_SOURCE: Record<Family, Cidr> = { ipv4: host('ipv4', '127.0.0.6'), ipv6: host('ipv6', '::6') }

const one = (p: number): PortRange[] => [{ from: p, to: p }]

const rule = (purpose: Purpose, protocol: RuleProtocol, matches: readonly Match[], target: Target): Rule => ({ purpose, protocol, matches, target })
const RETURN: Target = { kind: 'return' }
const redirect = (port: number): Target => ({ kind: 'redirect', port })
const not = (match: NegatableMatch): Match => ({ kind: 'not', match })

/** istioFamilies: the families a flavour plans for the configuration (see the top of the file). Pure. */
export const istioFamilies = (config: IstioConfig, flavour: IstioFlavour): Family[] =>
  flavour === 'nftables' || config.enableIpv6 ? ['ipv4', 'ipv6'] : ['ipv4']

/** Why those families, in Istio's terms. Pure. */
export const istioFamiliesReason = (config: IstioConfig, flavour: IstioFlavour): string => {
  const why = config.enableIpv6
    ? `IPv6 is captured: ${config.hostIp.includes(':') ? "the pod's first global address is IPv6" : 'dual stack, and the pod has a global IPv6 address'}`
    : `IPv6 is not captured: the pod's first global address (${config.hostIp}) is IPv4 and dual stack is off`
  return flavour === 'nftables' && !config.enableIpv6 ? `${why} (native nftables: IPv6 still meets every rule that names no address)` : why
}

interface Scope {
  readonly config: IstioConfig
  readonly flavour: IstioFlavour
  readonly family: Family
  /** Rules that name an address of this family are written (always for IPv4; for IPv6 when it is enabled). */
  readonly addresses: boolean
  /** The family's loopback range Istio leaves to the pod itself. */
  readonly loopback: Cidr
}

/** The rule only where the family's addressed rules are written. */
const addressed = (s: Scope, rules: readonly Rule[]): readonly Rule[] => (s.addresses ? rules : [])

const inFamily = (cidrs: readonly Cidr[], family: Family): Cidr[] => cidrs.filter(c => c.family === family)

// Istio inserts its reroute rules at the head of PREROUTING one by one, so they run in reverse order of writing;
// every such rule is about one interface, so their order among interfaces decides nothing.
const rerouteRules = (s: Scope): Rule[] => {
  const { config } = s
  const redirects: Rule[] =
    config.outboundInclude === 'all'
      ? config.rerouteInterfaces.map(name => rule('istio-reroute-interface', 'tcp', [{ kind: 'in-interface', name }], redirect(config.proxyPort)))
      : inFamily(config.outboundInclude, s.family).flatMap(cidr =>
          config.rerouteInterfaces.map(name =>
            rule(
              'istio-reroute-interface',
              'tcp',
              [
                { kind: 'in-interface', name },
                { kind: 'destination', cidr },
              ],
              redirect(config.proxyPort),
            ),
          ),
        )
  const skips = config.rerouteInterfaces.map(name => rule('istio-reroute-interface-skip', 'any', [{ kind: 'in-interface', name }], RETURN))
  // Only the IPv4 reroutes wait for nothing; the IPv6 ones (by address) wait for IPv6, as Istio's V6 inserts do.
  const addressedRedirects = config.outboundInclude === 'all' ? redirects : addressed(s, redirects)
  return [...addressedRedirects].reverse().concat(skips.reverse())
}

const excludeIn = (s: Scope): Rule[] =>
  s.config.excludeInterfaces.map(name => rule('istio-exclude-interface', 'any', [{ kind: 'in-interface', name }], RETURN))
const excludeOut = (s: Scope): Rule[] =>
  s.config.excludeInterfaces.map(name => rule('istio-exclude-interface', 'any', [{ kind: 'out-interface', name }], RETURN))

const dport = (ports: readonly PortRange[]): Extract<Match, { kind: 'dport' }> => ({ kind: 'dport', ports })

/** nat PREROUTING: reroute interfaces, excluded interfaces, then (REDIRECT mode) the inbound capture. */
const natInbound = (s: Scope): Chain => {
  const { config } = s
  const capture =
    config.tproxy || (config.inboundPorts !== 'all' && config.inboundPorts.length === 0)
      ? []
      : [
          rule('istio-tunnel-port', 'tcp', [dport(one(config.inboundTunnelPort))], RETURN),
          ...(config.inboundPorts === 'all'
            ? [
                ...config.inboundExcludePorts.map(p => rule('istio-inbound-exclude-port', 'tcp', [dport([p])], RETURN)),
                rule('istio-inbound-capture', 'tcp', [], redirect(config.inboundCapturePort)),
              ]
            : config.inboundPorts.map(p => rule('istio-inbound-capture', 'tcp', [dport([p])], redirect(config.inboundCapturePort)))),
        ]
  return chainOf(ISTIO_INBOUND_CHAIN, [...rerouteRules(s), ...excludeIn(s), ...capture])
}

/** The rules per proxy ID (UID or GID) in nat OUTPUT: to its own pod over lo, other IDs over lo, then its own. */
const perProxyId = (s: Scope, kind: 'uid-owner' | 'gid-owner', id: number): Rule[] => {
  const { config } = s
  const owner: Match = kind === 'uid-owner' ? { kind, uid: id } : { kind, gid: id }
  const notOwner = not(kind === 'uid-owner' ? { kind, uid: id } : { kind, gid: id })
  const dnsOn = config.dns !== 'off'
  // With DNS on, Istio also keeps the UID's port 53 over lo from the inbound port (not the GID's).
  const exempt = dnsOn && kind === 'uid-owner' ? [DNS, config.inboundTunnelPort] : [config.inboundTunnelPort]
  const toSelf = rule(
    'istio-proxy-to-self',
    'tcp',
    [{ kind: 'out-interface', name: 'lo' }, not({ kind: 'destination', cidr: s.loopback }), not(dport(exempt.map(p => ({ from: p, to: p })))), owner],
    redirect(config.inboundCapturePort),
  )
  const others = config.includeHasLoopback
    ? []
    : [
        dnsOn
          ? rule('istio-app-loopback', 'tcp', [{ kind: 'out-interface', name: 'lo' }, not(dport(one(DNS))), notOwner], RETURN)
          : rule('istio-app-loopback', 'any', [{ kind: 'out-interface', name: 'lo' }, notOwner], RETURN),
      ]
  return [...addressed(s, [toSelf]), ...others, rule(kind === 'uid-owner' ? 'istio-proxy-uid' : 'istio-proxy-gid', 'any', [owner], RETURN)]
}

const ownerGroupRules = (s: Scope): Rule[] => {
  const { except, gids } = s.config.ownerGroups
  return except
    ? gids.map(gid => rule('istio-owner-group-exclude', 'any', [{ kind: 'gid-owner', gid }], RETURN))
    : [
        rule(
          'istio-owner-groups',
          'any',
          gids.map(gid => not({ kind: 'gid-owner', gid })),
          RETURN,
        ),
      ]
}

/** DNS to port 53 (of the family's nameservers, or of anything) goes to the agent; TCP first, then UDP, as Istio writes them. */
const dnsRedirects = (s: Scope): Rule[] => {
  const { config } = s
  if (config.dns === 'off') return []
  const to = redirect(ISTIO_DNS_PORT)
  if (config.dns === 'all') return (['tcp', 'udp'] as const).map(p => rule('istio-dns-capture', p, [dport(one(DNS))], to))
  const servers = inFamily(config.dnsServers, s.family)
  return [
    ...addressed(
      s,
      (['tcp', 'udp'] as const).flatMap(p => servers.map(cidr => rule('istio-dns-capture', p, [{ kind: 'destination', cidr }, dport(one(DNS))], to))),
    ),
  ]
}

/** nat OUTPUT: Istio's ISTIO_OUTPUT, its jumps written as the REDIRECT they lead to. */
const natOutput = (s: Scope): Chain => {
  const { config, family } = s
  const include = config.outboundInclude
  return chainOf(ISTIO_OUTPUT_CHAIN, [
    ...excludeOut(s),
    ...config.outboundExcludePorts.flatMap(p =>
      (['tcp', 'udp'] as const).map(proto => rule('istio-outbound-exclude-port', proto, [dport([p])], RETURN)),
    ),
    ...addressed(s, [
      rule(
        'istio-passthrough-source',
        'any',
        [
          { kind: 'out-interface', name: 'lo' },
          { kind: 'source', cidr: PASSTHROUGH_SOURCE[family] },
        ],
        RETURN,
      ),
    ]),
    ...config.proxyUids.flatMap(uid => perProxyId(s, 'uid-owner', uid)),
    ...config.proxyGids.flatMap(gid => perProxyId(s, 'gid-owner', gid)),
    ...ownerGroupRules(s),
    ...dnsRedirects(s),
    ...addressed(s, [
      rule('istio-loopback-destination', 'any', [{ kind: 'destination', cidr: s.loopback }], RETURN),
      ...inFamily(config.outboundExclude, family).map(cidr => rule('istio-outbound-exclude-cidr', 'any', [{ kind: 'destination', cidr }], RETURN)),
    ]),
    ...config.outboundPorts.map(p => rule('istio-outbound-port-capture', 'tcp', [dport([p])], redirect(config.proxyPort))),
    ...(include === 'all'
      ? [rule('istio-outbound-capture', 'tcp', [], redirect(config.proxyPort))]
      : addressed(
          s,
          inFamily(include, family).map(cidr => rule('istio-outbound-capture', 'tcp', [{ kind: 'destination', cidr }], redirect(config.proxyPort))),
        )),
  ])
}

/**
 * mangle PREROUTING: excluded interfaces (TPROXY), invalid packets dropped, then TPROXY's inbound capture.
 * Istio saves the packet's mark to its connection (CONNMARK --save-mark, for packets marked 1337) after its jump to
 * the inbound chain; here it comes before the inbound rules. Same outcome: the inbound chain's first rule returns
 * every packet marked 1337, and every rule that sets the mark also accepts, so the packets that reach the save with
 * the mark are exactly those that arrive with it.
 */
const mangleInbound = (s: Scope): Chain => {
  const { config, family } = s
  const mark: Match = { kind: 'mark', mark: { value: config.tproxyMark, mask: undefined } }
  const inbound = (matches: readonly Match[]): Rule[] => {
    const established: Match[] = [...matches, { kind: 'established' }]
    return [
      // Istio's ISTIO_DIVERT: mark, then accept.
      rule('istio-divert-mark', 'tcp', established, { kind: 'mark-set', mark: config.tproxyMark }),
      rule('istio-divert', 'tcp', established, { kind: 'accept' }),
      ...addressed(s, [
        rule('istio-inbound-capture', 'tcp', [...matches, not({ kind: 'destination', cidr: s.loopback })], {
          kind: 'tproxy',
          port: config.inboundCapturePort,
          mark: config.tproxyMark,
        }),
      ]),
    ]
  }
  const capture =
    !config.tproxy || (config.inboundPorts !== 'all' && config.inboundPorts.length === 0)
      ? []
      : [
          rule('istio-marked', 'tcp', [mark], RETURN),
          ...addressed(s, [
            rule(
              'istio-passthrough-source',
              'tcp',
              [
                { kind: 'source', cidr: PASSTHROUGH_SOURCE[family] },
                { kind: 'in-interface', name: 'lo' },
              ],
              RETURN,
            ),
          ]),
          rule(
            'istio-loopback',
            'tcp',
            [{ kind: 'in-interface', name: 'lo' }, not({ kind: 'mark', mark: { value: ISTIO_OUTBOUND_MARK, mask: undefined } })],
            RETURN,
          ),
          ...(config.inboundPorts === 'all'
            ? [...config.inboundExcludePorts.map(p => rule('istio-inbound-exclude-port', 'tcp', [dport([p])], RETURN)), ...inbound([])]
            : config.inboundPorts.flatMap(p => inbound([dport([p])]))),
        ]
  return chainOf(ISTIO_INBOUND_MANGLE_CHAIN, [
    ...(config.tproxy ? excludeIn(s) : []),
    // Istio's nftables mode drops only invalid TCP.
    ...(config.dropInvalid ? [rule('istio-drop-invalid', s.flavour === 'nftables' ? 'tcp' : 'any', [{ kind: 'invalid' }], { kind: 'drop' })] : []),
    ...(config.tproxy ? [rule('istio-save-mark', 'tcp', [mark], { kind: 'connmark-save' })] : []),
    ...capture,
  ])
}

/** mangle OUTPUT (TPROXY): the proxy's connections to its own pod over lo get mark 1338; replies get the connection's mark. */
const mangleOutput = (s: Scope): Chain => {
  const { config } = s
  if (!config.tproxy) return chainOf(ISTIO_OUTPUT_MANGLE_CHAIN, [])
  const mark = config.tproxyMark
  const toSelf = (owner: Match): Rule =>
    rule('istio-proxy-to-self-mark', 'tcp', [not({ kind: 'destination', cidr: s.loopback }), { kind: 'out-interface', name: 'lo' }, owner], {
      kind: 'mark-set',
      mark: ISTIO_OUTBOUND_MARK,
    })
  return chainOf(ISTIO_OUTPUT_MANGLE_CHAIN, [
    ...excludeOut(s),
    rule(
      'istio-marked',
      'tcp',
      [
        { kind: 'out-interface', name: 'lo' },
        { kind: 'mark', mark: { value: mark, mask: undefined } },
      ],
      RETURN,
    ),
    ...addressed(s, [
      ...config.proxyUids.map(uid => toSelf({ kind: 'uid-owner', uid })),
      ...config.proxyGids.map(gid => toSelf({ kind: 'gid-owner', gid })),
    ]),
    rule('istio-restore-mark', 'tcp', [{ kind: 'connmark', mark }], { kind: 'connmark-restore' }),
  ])
}

/** raw: the DNS flows in two conntrack zones (the proxy's and the app's), as Istio splits them. */
const rawDns = (s: Scope): Chain[] => {
  const { config, family } = s
  if (config.dns === 'off') return []
  const zone = (z: number): Target => ({ kind: 'ct-zone', zone: z, direction: 'both' })
  const owners: Match[] = [
    ...config.proxyUids.map((uid): Match => ({ kind: 'uid-owner', uid })),
    ...config.proxyGids.map((gid): Match => ({ kind: 'gid-owner', gid })),
  ]
  const servers = inFamily(config.dnsServers, family)
  const toServers =
    config.dns === 'all'
      ? [rule('istio-dns-app-query', 'udp', [dport(one(DNS))], zone(2))]
      : addressed(
          s,
          servers.map(cidr => rule('istio-dns-app-query', 'udp', [dport(one(DNS)), { kind: 'destination', cidr }], zone(2))),
        )
  const fromServers =
    config.dns === 'all'
      ? [rule('istio-dns-upstream-answer', 'udp', [{ kind: 'sport', ports: one(DNS) }], zone(1))]
      : addressed(
          s,
          servers.map(cidr =>
            rule(
              'istio-dns-upstream-answer',
              'udp',
              [
                { kind: 'sport', ports: one(DNS) },
                { kind: 'source', cidr },
              ],
              zone(1),
            ),
          ),
        )
  return [
    chainOf(ISTIO_INBOUND_DNS_CHAIN, fromServers),
    chainOf(ISTIO_OUTPUT_DNS_CHAIN, [
      ...owners.flatMap(owner => [
        rule('istio-dns-proxy-query', 'udp', [dport(one(DNS)), owner], zone(1)),
        rule('istio-dns-proxy-answer', 'udp', [{ kind: 'sport', ports: one(ISTIO_DNS_PORT) }, owner], zone(2)),
      ]),
      ...toServers,
    ]),
  ]
}

const IPV6_LOOPBACK: Cidr = host('ipv6', '::1')

/**
 * buildIstioPlan: the rules of Istio's istio-iptables (or its nftables mode) for the configuration, per family:
 * istioFamilies' unless others are asked for (clean takes every family the host has). Pure.
 */
export const buildIstioPlan = (config: IstioConfig, flavour: IstioFlavour, families: readonly Family[] = istioFamilies(config, flavour)): Plan => ({
  families: families.map((family): FamilyPlan => {
    const s: Scope = {
      config,
      flavour,
      family,
      addresses: family === 'ipv4' || config.enableIpv6,
      loopback: family === 'ipv4' ? config.loopbackCidr : IPV6_LOOPBACK,
    }
    // Istio routes marked packets locally only where it captures inbound by TPROXY, and for IPv6 once it is enabled.
    const routed = config.tproxy && (config.inboundPorts === 'all' || config.inboundPorts.length > 0) && s.addresses
    const chains = [...rawDns(s), mangleInbound(s), mangleOutput(s), natInbound(s), natOutput(s)].filter(c => c.rules.length > 0)
    return {
      family,
      chains,
      sets: [],
      routing: routed ? { priority: TPROXY_RULE_PRIORITY, mark: config.tproxyMark, table: config.tproxyRouteTable } : undefined,
    }
  }),
})
