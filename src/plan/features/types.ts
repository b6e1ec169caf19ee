// What a capture feature adds to the plan. Each feature is one module returning a Contribution from the
// settings; buildPlan merges them in a fixed place in each chain, so a feature never reorders another's rules.

import type { Family, Settings } from '../../settings/types.js'
import type { Chain, Rule } from '../types.js'

export interface Contribution {
  /** The port inbound captures redirect to, when the feature decides it (at most one active feature may). */
  readonly inboundPort?: number
  /** RETURN rules placed ahead of the inbound captures, after the port exclusions. */
  readonly inboundBypass?: readonly Rule[]
  /** RETURN rules placed ahead of the outbound captures, after the other bypasses. */
  readonly outboundBypass?: readonly Rule[]
  /** Chains of the feature's own; at a hook it shares with the capture chains, they run first. */
  readonly chains?: readonly Chain[]
}

export type Feature = (settings: Settings, family: Family) => Contribution
