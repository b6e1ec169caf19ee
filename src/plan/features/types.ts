// What a capture feature adds to the plan. Each feature is one module returning a Contribution from the
// settings; buildPlan merges them in a fixed place in each chain, so a feature never reorders another's rules.

import type { Family, Settings } from '../../settings/types.js'
import type { LocalRouting, Rule } from '../types.js'

export interface Contribution {
  /** The port inbound captures redirect to, when the feature decides it (at most one active feature may). */
  readonly inboundPort?: number
  /** RETURN rules placed ahead of the inbound captures, after the port exclusions. */
  readonly inboundBypass?: readonly Rule[]
  /** RETURN rules placed ahead of the outbound captures, after the other bypasses. */
  readonly outboundBypass?: readonly Rule[]
  /** The policy routing the feature needs beside the rules (at most one active feature may). */
  readonly routing?: LocalRouting
}

export type Feature = (settings: Settings, family: Family) => Contribution
