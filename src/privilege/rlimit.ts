// Envoy wants many file descriptors. What the proxy gets is the hard limit: the supervising Node process raises
// its soft limit to the hard one at start-up, and the proxy inherits that. So the hard limit is what is raised,
// while the agent is still root, because raising it needs CAP_SYS_RESOURCE, which the proxy will not have.

import { createRequire } from 'node:module'
import { EnvironmentError, PrivilegeError } from '../errors.js'

interface Posix {
  getrlimit(resource: string): { soft: number | null; hard: number | null }
  setrlimit(resource: string, limits: { soft: number; hard: number }): void
}

/** raiseNofile makes sure the open-file limit allows `wanted`; it never lowers a limit. */
export const raiseNofile = (wanted: number): string => {
  const posix = createRequire(import.meta.url)('posix') as Posix
  const hard = posix.getrlimit('nofile').hard ?? Number.MAX_SAFE_INTEGER
  if (hard >= wanted) return `open-file limit ${hard} (at least the ${wanted} asked for)`
  try {
    posix.setrlimit('nofile', { soft: wanted, hard: wanted })
  } catch (error) {
    throw new PrivilegeError(`cannot raise the open-file limit to ${wanted}: the hard limit is ${hard} and raising it needs CAP_SYS_RESOURCE`, {
      cause: error,
    })
  }
  return `open-file limit raised to ${wanted}`
}

/**
 * requireNofile refuses to start (EnvironmentError) when the open-file limit is below `needed`. Node raises its
 * soft limit to the hard one at start-up, so only raising the hard limit (CAP_SYS_RESOURCE) would help.
 */
export const requireNofile = (needed: number, who: string): void => {
  const posix = createRequire(import.meta.url)('posix') as Posix
  const soft = posix.getrlimit('nofile').soft ?? Number.MAX_SAFE_INTEGER
  if (soft < needed) throw new EnvironmentError(`${who} needs at least ${needed} open files, and the limit is ${soft} (raise RLIMIT_NOFILE)`)
}
