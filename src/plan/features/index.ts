// Every capture feature, by name. A Record, so adding a name without its module (or the reverse) does not compile;
// buildPlan asks each of them, in this order, what it adds.

import type { Family, Settings } from '../../settings/types.js'
import type { Chain, LocalRouting, PlanFacts, Rule } from '../types.js'
import { dns } from './dns.js'
import { excludeInterfaces } from './exclude-interfaces.js'
import { inboundPort } from './inbound-port.js'
import { tproxy } from './tproxy.js'
import type { Contribution, Feature, InboundCapture } from './types.js'

export type FeatureName = 'inbound-capture-port' | 'exclude-interfaces' | 'dns' | 'tproxy'

export const FEATURES: Record<FeatureName, Feature> = {
  'inbound-capture-port': inboundPort,
  'exclude-interfaces': excludeInterfaces,
  dns,
  tproxy,
}

export interface Contributions {
  readonly inboundPort: number
  readonly inboundBypass: readonly Rule[]
  readonly outboundBypass: readonly Rule[]
  readonly routing: LocalRouting | undefined
  readonly inboundCapture: InboundCapture | undefined
  readonly chains: readonly Chain[]
}

/** Every feature's contribution for one family, merged. Pure; two features deciding the inbound port is a bug. */
export const contributions = (
  settings: Settings,
  family: Family,
  features: Readonly<Record<string, Feature>> = FEATURES,
  facts: PlanFacts = {},
): Contributions => {
  const all = Object.entries(features).map(([name, feature]) => [name, feature(settings, family, facts)] as [string, Contribution])
  const ports = all.filter(([, c]) => c.inboundPort !== undefined)
  if (ports.length > 1) throw new Error(`features ${ports.map(([n]) => n).join(' and ')} both decide the inbound port`)
  const [routing, inboundCapture] = (['routing', 'inboundCapture'] as const).map(key => {
    const deciding = all.filter(([, c]) => c[key] !== undefined)
    if (deciding.length > 1) throw new Error(`features ${deciding.map(([n]) => n).join(' and ')} both decide ${key}`)
    return deciding[0]?.[1]
  })
  return {
    inboundPort: ports[0]?.[1].inboundPort ?? settings.proxyPort,
    inboundBypass: all.flatMap(([, c]) => c.inboundBypass ?? []),
    outboundBypass: all.flatMap(([, c]) => c.outboundBypass ?? []),
    routing: routing?.routing,
    inboundCapture: inboundCapture?.inboundCapture,
    chains: all.flatMap(([, c]) => c.chains ?? []),
  }
}
