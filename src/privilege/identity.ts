// Who the proxy runs as. Resolution is pure (the user database lookups are handed in), and UID 0 is refused
// whatever way it is asked for: the proxy never runs as root.

import { PrivilegeError } from '../errors.js'
import type { AgentSettings, Settings } from '../settings/types.js'

export interface ProxyIdentity {
  readonly uid: number
  readonly gid: number
  /** 'init': the user's groups from the group database; otherwise exactly these supplementary groups. */
  readonly groups: 'init' | readonly number[]
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
  return { uid, gid, groups: entry ? 'init' : [gid], name: entry?.name }
}

export const describeIdentity = (id: ProxyIdentity): string =>
  `uid ${id.uid}${id.name ? ` (${id.name})` : ''}, gid ${id.gid}, groups ${id.groups === 'init' ? 'from the group database' : id.groups.join(',')}`
