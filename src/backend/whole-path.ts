// Reads every place netfilter evaluates before or beside our rules, for the whole-path check: native nftables
// (one `nft list ruleset` for both families), and the iptables variant we do not use, where it holds tables.
// Nothing is read that does not exist: legacy tables are listed in /proc first, because reading one creates it.

import { EnvironmentError } from '../errors.js'
import { seenTables } from '../path/from-iptables.js'
import { seenNftTables, splitRuleset, type NftTableText } from '../path/from-nft.js'
import type { SeenTable } from '../path/model.js'
import type { Family } from '../settings/types.js'
import type { HostFs } from './detect.js'
import { CommandFailed, type Exec } from '../exec/exec.js'
import type { Variant } from './iptables/iptables.js'

export interface Ruleset {
  readonly tables: readonly NftTableText[]
  /** Tables nft says iptables-nft manages (`ip nat`): they are read with iptables-nft-save instead. */
  readonly managed: ReadonlySet<string>
}

const NFT_FAMILY: Record<Family, string> = { ipv4: 'ip', ipv6: 'ip6' }

/** readRuleset runs `nft list ruleset` once; a kernel without nf_tables has no native rules to read. */
export const readRuleset = async (exec: Exec): Promise<Ruleset> => {
  try {
    const { stdout, stderr } = await exec('nft', ['list', 'ruleset'])
    const managed = new Set([...stderr.matchAll(/table (\S+ \S+) is managed by iptables-nft/g)].map(m => m[1]!))
    return { tables: splitRuleset(stdout), managed }
  } catch (error) {
    if (error instanceof CommandFailed && /not supported/i.test(error.stderr)) return { tables: [], managed: new Set() }
    if (error instanceof EnvironmentError && /not installed/.test(error.message)) {
      throw new EnvironmentError('the whole-path check reads native nftables rules with nft, which is not installed (the nftables package)', {
        cause: error,
      })
    }
    throw error
  }
}

const saveTool = (family: Family, variant: Variant): string => `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${variant}-save`
const LEGACY_NAMES: Record<Family, string> = { ipv4: '/proc/net/ip_tables_names', ipv6: '/proc/net/ip6_tables_names' }

/**
 * otherTables reads, for one family, the iptables tables of the variant(s) we do not program with, and the native
 * nft tables. `own` is the backend in use; `ownTables` names nft tables already read another way (ours).
 */
export const otherTables = async (
  exec: Exec,
  fs: HostFs,
  family: Family,
  own: Variant | 'nftables',
  ruleset: Ruleset,
  ownTables: ReadonlySet<string>,
): Promise<SeenTable[]> => {
  const found: SeenTable[] = []
  if (own !== 'legacy' && ((await fs.readFile(LEGACY_NAMES[family])) ?? '').trim() !== '') {
    found.push(...seenTables((await exec(saveTool(family, 'legacy'), [])).stdout, family, 'iptables-legacy'))
  }
  const managedHere = [...ruleset.managed].some(t => t.startsWith(`${NFT_FAMILY[family]} `))
  if (own !== 'nft' && managedHere) found.push(...seenTables((await exec(saveTool(family, 'nft'), [])).stdout, family, 'iptables-nft'))
  const native = ruleset.tables.filter(t => {
    const key = `${t.family} ${t.name}`
    const ofThisFamily = t.family === 'inet' || t.family === NFT_FAMILY[family]
    return ofThisFamily && !ruleset.managed.has(key) && !ownTables.has(key)
  })
  return [...found, ...seenNftTables(native).map(t => ({ ...t, families: t.families.filter(f => f === family) }))]
}
