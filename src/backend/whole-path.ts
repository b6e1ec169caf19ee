// Reads every place that sees a packet before, beside or instead of our rules, for the whole-path check: native
// nftables (one `nft list ruleset` for both families, netdev tables included), the iptables variant we do not use,
// where it holds tables, and the pod's devices (tc filters, XDP programs: see devices.ts).
// Nothing is read that does not exist: legacy tables are listed in /proc first, because reading one creates it.
// Reading (readElsewhere) is apart from choosing what counts for a family (otherTables, pure), so a backend can
// read these places at the moment that costs least.

import { EnvironmentError } from '../errors.js'
import { seenTables } from '../path/from-iptables.js'
import { managedTables, seenNftTables, splitRuleset, type NftTableText } from '../path/from-nft.js'
import type { SeenTable } from '../path/model.js'
import type { Family } from '../settings/types.js'
import { failedFor, isNotInstalled, type Exec } from '../exec/exec.js'
import { runNft } from './nftables/classify.js'
import { runIptables } from './iptables/classify.js'
import { tool, type Variant } from './iptables/iptables.js'
import { readDeviceHooks } from './devices.js'
import { isUnreadable, type LegacyNamesOnce } from './legacy-names.js'

export interface Ruleset {
  readonly tables: readonly NftTableText[]
  /** Tables nft says iptables-nft manages (`ip nat`): they are read with iptables-nft-save instead. */
  readonly managed: ReadonlySet<string>
}

/** What lies outside the backend's own tables: the nft ruleset, and per family the other iptables variant's tables. */
export interface Elsewhere {
  readonly ruleset: Ruleset
  readonly iptables: ReadonlyMap<Family, readonly SeenTable[]>
  /** tc filters and XDP programs, for both families. */
  readonly devices: readonly SeenTable[]
}

const NFT_FAMILY: Record<Family, string> = { ipv4: 'ip', ipv6: 'ip6' }

/** readRuleset runs `nft list ruleset` once; a kernel without nf_tables has no native rules to read. */
export const readRuleset = async (exec: Exec): Promise<Ruleset> => {
  try {
    const { stdout, stderr } = await runNft(exec, ['list', 'ruleset'])
    return { tables: splitRuleset(stdout), managed: managedTables(stderr) }
  } catch (error) {
    if (failedFor(error, 'unsupported')) return { tables: [], managed: new Set() }
    if (isNotInstalled(error)) {
      throw new EnvironmentError('the whole-path check reads native nftables rules with nft, which is not installed (the nftables package)', {
        cause: error,
      })
    }
    throw error
  }
}

const saved = async (exec: Exec, family: Family, variant: Variant): Promise<SeenTable[]> =>
  seenTables((await runIptables(exec, tool(family, variant, 'save'), [])).stdout, family, `iptables-${variant}`)

/**
 * readElsewhere reads, for each family, the iptables tables of the variant(s) we do not program with (`own` is the
 * backend in use), the pod's devices, and the nft ruleset, each unless the backend has just read it. The legacy reads need only /proc, so
 * they run beside `nft list ruleset`; iptables-nft is read only where nft says it manages a table.
 */
export const readElsewhere = async (
  exec: Exec,
  legacyNames: LegacyNamesOnce,
  families: readonly Family[],
  own: Variant | 'nftables',
  read?: Ruleset,
  devicesRead?: readonly SeenTable[],
): Promise<Elsewhere> => {
  // Legacy tables this process may not list cannot be read without making them (legacy-names.ts): not read.
  const legacy = families.map(async family => {
    const names = own === 'legacy' ? undefined : (await legacyNames())[family]
    return names !== undefined && !isUnreadable(names) && names.length > 0 ? saved(exec, family, 'legacy') : []
  })
  const [ruleset, devices, ...legacyTables] = await Promise.all([read ?? readRuleset(exec), devicesRead ?? readDeviceHooks(exec), ...legacy])
  const nftTables = await Promise.all(
    families.map(family =>
      own !== 'nft' && [...ruleset.managed].some(t => t.startsWith(`${NFT_FAMILY[family]} `)) ? saved(exec, family, 'nft') : [],
    ),
  )
  return { ruleset, iptables: new Map(families.map((family, i) => [family, [...legacyTables[i]!, ...nftTables[i]!]])), devices }
}

/** otherTables: what the whole-path check sees for one family besides our own tables; `ownTables` names nft tables read another way (ours). Pure. */
export const otherTables = (family: Family, elsewhere: Elsewhere, ownTables: ReadonlySet<string>): SeenTable[] => {
  const { ruleset } = elsewhere
  const native = ruleset.tables.filter(t => {
    const key = `${t.family} ${t.name}`
    const ofThisFamily = t.family === 'inet' || t.family === 'netdev' || t.family === NFT_FAMILY[family]
    return ofThisFamily && !ruleset.managed.has(key) && !ownTables.has(key)
  })
  return [
    ...(elsewhere.iptables.get(family) ?? []),
    ...[...seenNftTables(native), ...elsewhere.devices].map(t => ({ ...t, families: t.families.filter(f => f === family) })),
  ]
}
