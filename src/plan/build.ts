// Turns settings into the rules to install, per address family. Order inside a chain is the order the kernel
// evaluates: every bypass (RETURN) comes before the capture (REDIRECT) it protects against.

import type { Cidr, Family, PortRange, Settings } from '../settings/types.js'
import { INBOUND_CHAIN, OUTBOUND_CHAIN, type Purpose } from './owned.js'
import { chainOf, proxyIdentities } from './parts.js'
import { contributions, type Contributions } from './features/index.js'
import type { InboundCapture } from './features/types.js'
import type { Chain, FamilyPlan, Plan, PlanFacts, Rule, ServiceSet, Target } from './types.js'

const LOOPBACK: Record<Family, Cidr> = {
  ipv4: { family: 'ipv4', address: '127.0.0.1', prefix: 32 },
  ipv6: { family: 'ipv6', address: '::1', prefix: 128 },
}

// xt_multiport takes at most 15 ports per rule, and a range uses two of them.
const MULTIPORT_SLOTS = 15

const chunkPorts = (ports: readonly PortRange[]): PortRange[][] => {
  const chunks: PortRange[][] = []
  let current: PortRange[] = []
  let used = 0
  for (const range of ports) {
    const cost = range.from === range.to ? 1 : 2
    if (used + cost > MULTIPORT_SLOTS) {
      chunks.push(current)
      current = []
      used = 0
    }
    current.push(range)
    used += cost
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

const RETURN: Target = { kind: 'return' }

const portRules = (purpose: Purpose, ports: readonly PortRange[], target: Target): Rule[] =>
  chunkPorts(ports).map(chunk => ({ purpose, protocol: 'tcp', matches: [{ kind: 'dport', ports: chunk }], target }))

const inFamily = (cidrs: readonly Cidr[], family: Family): Cidr[] => cidrs.filter(c => c.family === family)

// Inbound captures are nat REDIRECTs into SIDECAR_INBOUND unless a feature (TPROXY) takes them to a chain of its own.
const REDIRECT_INBOUND: InboundCapture = { chain: INBOUND_CHAIN, lead: [], target: port => ({ kind: 'redirect', port }) }

const inboundChain = (settings: Settings, features: Contributions): Chain => {
  const home = features.inboundCapture ?? REDIRECT_INBOUND
  const target = home.target(features.inboundPort)
  const capture =
    settings.inboundPorts === 'all'
      ? [{ purpose: 'inbound-capture', protocol: 'tcp', matches: [], target } as const]
      : portRules('inbound-capture', settings.inboundPorts, target)
  // With nothing to capture the chain stays empty, and so do its exclusions.
  const exclude =
    capture.length === 0 ? [] : [...home.lead, ...portRules('inbound-exclude-port', settings.inboundExcludePorts, RETURN), ...features.inboundBypass]
  return chainOf(home.chain, [...exclude, ...capture])
}

const serviceSets = (settings: Settings, family: Family): ServiceSet[] =>
  settings.outboundMethod !== 'explicit'
    ? []
    : [false, true].map(withPorts => ({
        family,
        withPorts,
        services: settings.services.filter(s => s.cidr.family === family && (s.ports !== undefined) === withPorts),
      }))

const outboundChain = (settings: Settings, family: Family, features: Contributions): Chain => {
  const redirect: Target = { kind: 'redirect', port: settings.proxyPort }
  const include = settings.outboundIncludeCidrs
  const capture: Rule[] =
    settings.outboundMethod === 'explicit'
      ? serviceSets(settings, family).map(set => ({
          purpose: set.withPorts ? 'service-port-capture' : 'service-capture',
          protocol: 'tcp',
          matches: [{ kind: 'service-set', family, withPorts: set.withPorts }],
          target: redirect,
        }))
      : include === 'all'
        ? [{ purpose: 'outbound-capture', protocol: 'tcp', matches: [], target: redirect }]
        : inFamily(include, family).map(cidr => ({
            purpose: 'outbound-capture',
            protocol: 'tcp',
            matches: [{ kind: 'destination', cidr }],
            target: redirect,
          }))
  if (capture.length === 0) return chainOf(OUTBOUND_CHAIN, [])
  const bypass: Rule[] = [
    { purpose: 'loopback-source', protocol: 'tcp', matches: [{ kind: 'source', cidr: LOOPBACK[family] }], target: RETURN },
    ...proxyIdentities(settings).map((id): Rule => ({ purpose: id.purpose, protocol: 'tcp', matches: [id.match], target: RETURN })),
    ...portRules('outbound-exclude-port', settings.outboundExcludePorts, RETURN),
    ...inFamily(settings.outboundExcludeCidrs, family).map(
      (cidr): Rule => ({
        purpose: 'outbound-exclude-cidr',
        protocol: 'tcp',
        matches: [{ kind: 'destination', cidr } as const],
        target: RETURN,
      }),
    ),
    ...features.outboundBypass,
  ]
  return chainOf(OUTBOUND_CHAIN, [...bypass, ...capture])
}

/**
 * buildPlan turns settings and host facts (the families; the excluded interfaces' routes) into the rules to install
 * for each family. Pure: no I/O, env or clock.
 */
export const buildPlan = (settings: Settings, families: readonly Family[], facts: PlanFacts = {}): Plan => ({
  families: families.map((family): FamilyPlan => {
    const features = contributions(settings, family, undefined, facts)
    return {
      family,
      chains: [...features.chains, inboundChain(settings, features), outboundChain(settings, family, features)],
      sets: serviceSets(settings, family),
      routing: features.routing,
    }
  }),
})
