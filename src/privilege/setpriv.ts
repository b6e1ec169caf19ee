// The drop itself is done by util-linux setpriv, exec'd in place of the agent: capabilities are per thread, and a
// Node process has several, so changing them from inside Node would leave some threads privileged. setpriv is
// one thread, changes IDs, groups, capability sets and no_new_privs in the right order, then execs.

import type { ProxyIdentity } from './identity.js'

/**
 * setprivArgs is setpriv's argv for running as `id` with no capability at all, or with exactly CAP_NET_ADMIN
 * (ambient, so it survives the exec of a non-root program) when `netAdmin` is set. Pure.
 */
export const setprivArgs = (id: ProxyIdentity, netAdmin: boolean): string[] => {
  const caps = netAdmin ? '-all,+net_admin' : '-all'
  return [
    `--reuid=${id.uid}`,
    `--regid=${id.gid}`,
    `--groups=${id.groups.join(',')}`,
    `--inh-caps=${caps}`,
    `--ambient-caps=${caps}`,
    `--bounding-set=${caps}`,
    '--no-new-privs',
    '--',
  ]
}
