// What a capture feature adds to the plan. Each feature is one module returning a Contribution from the
// settings; buildPlan merges them in a fixed place in each chain, so a feature never reorders another's rules.

import type { Family, Settings } from '../../settings/types.js'
import type { ChainName } from '../owned.js'
import type { Chain, LocalRouting, PlanFacts, Rule, Target } from '../types.js'

export interface Contribution {
  /** The port inbound captures redirect to, when the feature decides it (at most one active feature may). */
  readonly inboundPort?: number
  /** RETURN rules placed ahead of the inbound captures, after the port exclusions. */
  readonly inboundBypass?: readonly Rule[]
  /** RETURN rules placed ahead of the outbound captures, after the other bypasses. */
  readonly outboundBypass?: readonly Rule[]
  /** The policy routing the feature needs beside the rules (at most one active feature may). */
  readonly routing?: LocalRouting
  /**
   * Where inbound captures go instead of nat's REDIRECT (at most one active feature may say): the chain, the rules
   * ahead of its exclusions, and the capture target for the inbound port.
   */
  readonly inboundCapture?: InboundCapture
  /** Chains of the feature's own, beside the capture chains; at a hook it shares with them, they run first. */
  readonly chains?: readonly Chain[]
}

export interface InboundCapture {
  readonly chain: ChainName
  readonly lead: readonly Rule[]
  readonly target: (port: number) => Target
}

export type Feature = (settings: Settings, family: Family, facts: PlanFacts) => Contribution
