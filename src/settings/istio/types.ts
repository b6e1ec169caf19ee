// Istio's configuration of `istio-iptables`, validated and typed: what Istio's config holds after it read its flags,
// its environment and the pod (the proxy's IDs resolved, the nameservers read, IPv6 decided from the pod's addresses).

import type { Cidr, PortRange } from '../types.js'

/** DNS redirection as in force: off, every destination on port 53, or the nameservers of /etc/resolv.conf. */
export type IstioDns = 'off' | 'all' | 'servers'

/** Whose outbound TCP is redirected by group: every group but `gids` (except), or only `gids`. */
export interface OwnerGroups {
  readonly except: boolean
  readonly gids: readonly number[]
}

export interface IstioConfig {
  readonly proxyPort: number
  readonly inboundCapturePort: number
  readonly inboundTunnelPort: number
  readonly proxyUids: readonly number[]
  readonly proxyGids: readonly number[]
  /** Inbound by TPROXY (mangle) rather than REDIRECT (nat). */
  readonly tproxy: boolean
  /** 'all', or the listed ports (each its own rule, as Istio writes them); empty: no inbound capture. */
  readonly inboundPorts: 'all' | readonly PortRange[]
  readonly inboundExcludePorts: readonly PortRange[]
  readonly excludeInterfaces: readonly string[]
  readonly outboundInclude: 'all' | readonly Cidr[]
  readonly outboundExclude: readonly Cidr[]
  /** An include range is a loopback address: then an app's connections over lo are not let go. */
  readonly includeHasLoopback: boolean
  readonly outboundPorts: readonly PortRange[]
  readonly outboundExcludePorts: readonly PortRange[]
  readonly rerouteInterfaces: readonly string[]
  readonly tproxyMark: number
  readonly tproxyRouteTable: number
  readonly dns: IstioDns
  /** The nameservers (host CIDRs) when dns is 'servers'. */
  readonly dnsServers: readonly Cidr[]
  readonly ownerGroups: OwnerGroups
  /** The IPv4 loopback range taken as the pod itself. */
  readonly loopbackCidr: Cidr
  readonly dropInvalid: boolean
  /** IPv6 is captured: the pod's first global address is IPv6, or (dual stack) it has one. */
  readonly enableIpv6: boolean
  /** The address that decided it (Istio's validation dials its family). */
  readonly hostIp: string
  readonly dryRun: boolean
  readonly skipRuleApply: boolean
  readonly runValidation: boolean
  readonly cleanupOnly: boolean
  readonly nativeNftables: boolean
  readonly iptablesVariant: 'legacy' | 'nft' | undefined
  readonly networkNamespace: string | undefined
  readonly probePort: number
  readonly probeTimeoutMs: number
}

/** pilot-agent's logging options as in force. */
export interface IstioLogging {
  readonly json: boolean
  /** The least level the default scope logs. */
  readonly level: IstioLevel
  readonly targets: readonly string[]
}

export const ISTIO_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal', 'none'] as const
export type IstioLevel = (typeof ISTIO_LEVELS)[number]
