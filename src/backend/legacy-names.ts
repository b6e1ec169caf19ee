// The tables iptables-legacy has made in this namespace, as /proc/net/ip{,6}_tables_names lists them. The kernel
// makes those files 0440 for the root of the netns's owning user namespace, so a non-root init with capabilities
// (file or ambient), or a netns made with its user namespace before the map was written, may not read them. No
// tool can tell instead without making tables: iptables-legacy-save reads the same file, and every other way of
// asking the kernel about a table by name (iptables -L, -save -t) makes that table if it is not there.

import { EnvironmentError } from '../errors.js'
import type { Family } from '../settings/types.js'

/** What reading the list needs: HostFs's readFile (detect.ts), which throws EnvironmentError for a refusal. */
export interface ReadsFiles {
  readFile(path: string): Promise<string | undefined>
}

export const LEGACY_NAMES: Readonly<Record<Family, string>> = { ipv4: '/proc/net/ip_tables_names', ipv6: '/proc/net/ip6_tables_names' }

/** Why the list could not be read: the path and what was refused. */
export interface Unreadable {
  readonly unreadable: string
}

/** The table names; undefined when the file is absent (no x_tables); Unreadable when this process may not read it. */
export type LegacyNames = readonly string[] | undefined | Unreadable

export const isUnreadable = (names: LegacyNames): names is Unreadable => names !== undefined && 'unreadable' in names

/** Both families' lists, as one run read them. */
export type LegacyNamesOf = Readonly<Record<Family, LegacyNames>>

/**
 * A run's lists, read once and passed along: detection reads them first (HostFacts.legacyNames) and every later
 * step of the run (the whole-path read, legacy's by-name saves) asks this instead of the file. Made per run, never
 * kept between runs: the node agent runs many pods' commands in one process.
 */
export type LegacyNamesOnce = () => Promise<LegacyNamesOf>

const REFUSED = new Set(['EACCES', 'EPERM'])

/** readLegacyNames reads one family's list; a refusal (EACCES, EPERM, by errno) is a value, any other failure throws. */
export const readLegacyNames = async (fs: ReadsFiles, family: Family): Promise<LegacyNames> => {
  try {
    const text = await fs.readFile(LEGACY_NAMES[family])
    return text === undefined ? undefined : text.split('\n').filter(Boolean)
  } catch (error) {
    const code = error instanceof EnvironmentError ? (error.cause as NodeJS.ErrnoException | undefined)?.code : undefined
    if (code !== undefined && REFUSED.has(code)) return { unreadable: `${LEGACY_NAMES[family]} is not readable by this process (${code})` }
    throw error
  }
}

/** readLegacyNamesOf reads both families' lists, side by side. */
export const readLegacyNamesOf = async (fs: ReadsFiles): Promise<LegacyNamesOf> => {
  const [ipv4, ipv6] = await Promise.all([readLegacyNames(fs, 'ipv4'), readLegacyNames(fs, 'ipv6')])
  return { ipv4, ipv6 }
}

/** legacyNamesOnce: `read` when detection has read them, else one read on first need, kept for this run only. */
export const legacyNamesOnce = (fs: ReadsFiles, read?: LegacyNamesOf): LegacyNamesOnce => {
  let names: Promise<LegacyNamesOf> | undefined = read && Promise.resolve(read)
  return () => {
    names ??= readLegacyNamesOf(fs)
    return names
  }
}
