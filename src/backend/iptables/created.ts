// iptables-nft makes the nf_tables table and built-in chain a rule goes into when they are missing, and nothing of
// iptables ever deletes them: after clean, an empty `ip raw` table (or a nat OUTPUT chain that TPROXY mode's first
// init made) stayed. So, before a restore that would make one, init makes it itself with nft, defined as
// iptables-nft defines it (same type, hook and priority, which iptables-nft checks) and marked with our comment;
// clean, and the undo of a refused apply, delete a marked chain once it holds no rule, and a marked table once it
// holds nothing else. Someone else's table or chain is never marked, so never deleted; one of ours that another
// program has put a rule in stays until it is empty. Legacy tables cannot be deleted at all (docs/capture.md says so).

import { CREATED_COMMENT, type Hook, type Table } from '../../plan/owned.js'
import type { NftTableText } from '../../path/from-nft.js'
import type { Family } from '../../settings/types.js'
import type { OwnedState } from './render-iptables.js'

const NFT_FAMILY: Record<Family, string> = { ipv4: 'ip', ipv6: 'ip6' }

// iptables-nft's own definitions of the built-in chains we jump from (its nft-chain table).
const BUILT_IN: Readonly<Record<Table, Readonly<Record<Hook, string>>>> = {
  raw: { PREROUTING: 'type filter hook prerouting priority -300', OUTPUT: 'type filter hook output priority -300' },
  mangle: { PREROUTING: 'type filter hook prerouting priority -150', OUTPUT: 'type route hook output priority -150' },
  nat: { PREROUTING: 'type nat hook prerouting priority -100', OUTPUT: 'type nat hook output priority -100' },
}

export interface Needed {
  readonly family: Family
  readonly table: Table
  readonly hook: Hook
}

/** The tables and built-in chains a family's desired state jumps from. Pure. */
export const neededBy = (family: Family, desired: OwnedState): Needed[] =>
  [...desired].flatMap(([table, state]) => [...new Set(state.jumps.map(j => j.split(' ')[1] as Hook))].map(hook => ({ family, table, hook })))

const find = (tables: readonly NftTableText[], family: Family, table: string): NftTableText | undefined =>
  tables.find(t => t.family === NFT_FAMILY[family] && t.name === table)

/** renderMissing is the nft transaction that makes, marked, each needed table and chain the ruleset lacks; undefined if none. Pure. */
export const renderMissing = (needed: readonly Needed[], tables: readonly NftTableText[]): string | undefined => {
  const lines: string[] = []
  const made = new Set<string>()
  for (const { family, table, hook } of needed) {
    const existing = find(tables, family, table)
    const name = `${NFT_FAMILY[family]} ${table}`
    if (!existing && !made.has(name)) {
      made.add(name)
      lines.push(`add table ${name} { comment "${CREATED_COMMENT}"; }`)
    }
    if (existing?.chains.some(c => c.name === hook)) continue
    lines.push(`add chain ${name} ${hook} { ${BUILT_IN[table][hook]}; policy accept; comment "${CREATED_COMMENT}"; }`)
  }
  return lines.length === 0 ? undefined : `${lines.join('\n')}\n`
}

const TABLES = new Set<string>(Object.keys(BUILT_IN))

/**
 * renderEmptyCreated is the nft transaction that deletes every marked built-in chain without rules, then every
 * marked table left with no chain and no set or other object; undefined if there is none. Pure.
 */
export const renderEmptyCreated = (tables: readonly NftTableText[], families: readonly Family[]): string | undefined => {
  const lines: string[] = []
  for (const table of tables) {
    if (!TABLES.has(table.name) || !families.some(f => NFT_FAMILY[f] === table.family)) continue
    const name = `${table.family} ${table.name}`
    const empty = table.chains.filter(c => c.comment === CREATED_COMMENT && c.rules.filter(r => !r.startsWith('policy ')).length === 0)
    lines.push(...empty.map(c => `delete chain ${name} ${c.name}`))
    // A table's own lines besides its chains (sets, maps, objects) are kept by the splitter only in its text.
    const others = table.text.split('\n').filter(l => /^\t(set|map|flowtable|counter|quota|limit|ct |secmark|synproxy)/.test(l))
    if (table.comment === CREATED_COMMENT && table.chains.length === empty.length && others.length === 0) lines.push(`delete table ${name}`)
  }
  return lines.length === 0 ? undefined : `${lines.join('\n')}\n`
}
