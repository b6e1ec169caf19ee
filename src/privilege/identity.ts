// Who the proxy runs as. Resolution is pure (the user database lookups are handed in), and UID 0 and GID 0 are
// refused whatever way they are asked for: the proxy never runs as root. Its supplementary groups are exactly the
// configured ones: the group database may list the proxy user in root, disk or shadow, and those would follow it.

import { PrivilegeError } from '../errors.js'
import type { AgentSettings, Settings } from '../settings/types.js'

export interface ProxyIdentity {
  readonly uid: number
  readonly gid: number
  /** Exactly these supplementary groups: the primary GID, then ISTIO_PROXY_GROUPS. */
  readonly groups: readonly number[]
  readonly name: string | undefined
}

export interface PasswdEntry {
  readonly name: string
  readonly uid: number
  readonly gid: number
}

/** Looks a user up by name or UID; undefined when there is no entry. */
export type UserLookup = (user: string | number) => PasswdEntry | undefined

export const resolveIdentity = (settings: Settings, agent: AgentSettings, lookup: UserLookup): ProxyIdentity => {
  const wanted = agent.user ?? settings.proxyUid
  const entry = lookup(wanted)
  if (typeof wanted === 'string' && !entry) {
    throw new PrivilegeError(`the proxy user ${JSON.stringify(wanted)} does not exist in this container's user database`)
  }
  const uid = typeof wanted === 'number' ? wanted : entry!.uid
  if (uid === 0) throw new PrivilegeError('refusing to run the proxy as root (UID 0)')
  const gid = settings.proxyGid ?? entry?.gid ?? uid
  if (gid === 0) throw new PrivilegeError('refusing to run the proxy with GID 0')
  if (agent.groups.includes(0)) throw new PrivilegeError('refusing to give the proxy the supplementary group 0')
  return { uid, gid, groups: [...new Set([gid, ...agent.groups])], name: entry?.name }
}

export const describeIdentity = (id: ProxyIdentity): string =>
  `uid ${id.uid}${id.name ? ` (${id.name})` : ''}, gid ${id.gid}, groups ${id.groups.join(',')}`
