// Pieces buildPlan and the capture features share: a chain in the table and hook its name is fixed to, and the
// matches that tell the proxy's own traffic apart.

import type { OutboundMethod, Settings } from '../settings/types.js'
import { CHAIN_HOMES, type ChainName, type Purpose } from './owned.js'
import type { Chain, Match, Rule } from './types.js'

/** A chain of ours, in the table and hook its name is fixed to. */
export const chainOf = (name: ChainName, rules: readonly Rule[]): Chain => ({
  name,
  table: CHAIN_HOMES[name].table,
  hook: CHAIN_HOMES[name].hook,
  rules,
})

export interface Identity {
  readonly purpose: Purpose
  readonly match: Match
}

// How each method tells the proxy's own traffic apart. A Record, so a new method cannot be left out. The explicit
// method chooses what to capture; the proxy is still told apart by its UID.
const byUid = (s: Settings): Identity => ({ purpose: 'proxy-uid', match: { kind: 'uid-owner', uid: s.proxyUid } })
const BY_METHOD: Record<OutboundMethod, (settings: Settings) => Identity> = {
  uid: byUid,
  explicit: byUid,
  mark: s => ({ purpose: 'proxy-mark', match: { kind: 'mark', mark: s.mark } }),
  cgroup: s => ({ purpose: 'proxy-cgroup', match: { kind: 'cgroup', classid: s.netClsId } }),
}

/** The proxy's identities: the active method's, then its GID when one is set. Pure. */
export const proxyIdentities = (settings: Settings): Identity[] => [
  BY_METHOD[settings.outboundMethod](settings),
  ...(settings.proxyGid === undefined ? [] : [{ purpose: 'proxy-gid', match: { kind: 'gid-owner', gid: settings.proxyGid } } as const]),
]
