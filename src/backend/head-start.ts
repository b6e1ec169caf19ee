// A plain `init` begins its work while Node is still loading the rest of the bundle: it takes the namespace's
// rule lock, looks at the host and starts the first read of each family's rules, so those processes run on the
// other core during the load instead of after it. Sound because nothing is read before the lock is held, and the
// lock is kept until init ends (init takes it over), exactly as if init had read after taking it itself. Only
// reads are started here: nothing is written before every setting has been validated, and a run that then refuses
// a setting has only read. Only the nf_tables variant is read ahead: reading legacy tables can create them.

import type { Exec } from '../exec/exec.js'
import { parseSettings, type Env } from '../settings/parse.js'
import type { Family, Settings } from '../settings/types.js'
import { probeHost, type HostFacts, type HostFs } from './detect.js'
import { createIptablesBackend } from './iptables/iptables.js'
import { acquireNetnsLock } from './lock.js'

export interface HeadStart {
  /** The settings the head start was made for: init uses it only when its own agree. */
  readonly backend: Settings['backend']
  readonly ipv6: Settings['ipv6']
  readonly lock: Promise<() => Promise<void>>
  readonly facts: Promise<HostFacts>
  /** The first iptables-save of each family, started once the lock was held (nf_tables variant only). */
  readonly reads: Promise<Partial<Record<Family, Promise<string>>>>
  /** How many processes it started, for init's report. */
  readonly processes: () => number
}

// A promise nobody may ever await (init stops at a refused setting first) must not count as an unhandled rejection;
// whoever awaits it still gets the rejection.
const quiet = <T>(promise: Promise<T>): Promise<T> => {
  promise.catch(() => undefined)
  return promise
}

/** Starts the head start for `init` with these settings, or returns undefined when they do not parse. */
export const startHeadStart = (env: Env, exec: Exec, fs: HostFs, lock = acquireNetnsLock): HeadStart | undefined => {
  let settings: Settings
  try {
    settings = parseSettings(env)
  } catch {
    return undefined // init refuses it with the whole message, before it uses anything of this
  }
  let processes = 0
  const timeoutMs = settings.execTimeout * 1000
  const counted: Exec = (file, args, input, options) => {
    processes++
    return exec(file, args, input, { timeoutMs, ...options })
  }
  const held = quiet(lock())
  const facts = quiet(held.then(() => probeHost(settings.backend, settings.ipv6, counted, fs)))
  const reads = quiet(
    facts.then(found => {
      if (found.variant.value !== 'nft') return {}
      const tables = createIptablesBackend(counted, 'nft')
      const families = found.families.value.filter(f => !(f === 'ipv4' && found.ipv4Saved.nft !== undefined))
      return Object.fromEntries(families.map(f => [f, quiet(tables.save(f))]))
    }),
  )
  return { backend: settings.backend, ipv6: settings.ipv6, lock: held, facts, reads, processes: () => processes }
}
