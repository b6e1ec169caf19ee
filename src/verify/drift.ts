// Drift: the plan against what was read from the kernel, for every backend, exactly (our chains, table, sets,
// routing and address, in order) and along the whole path (rules elsewhere that let captured TCP escape). Pure:
// the reads are values (src/backend/types.ts), so init, verify and a test feed it the same way.

import { compareState, memberDiff } from '../backend/compare.js'
import { ownRules } from '../backend/iptables/apply.js'
import { ownedIn } from '../backend/iptables/parse-save.js'
import { ipsetMembers } from '../backend/iptables/render-ipset.js'
import { renderState } from '../backend/iptables/render-iptables.js'
import { diffTable, NFT_SCOPE, OUR_NFT_TABLE, ourTable } from '../backend/nftables/nftables.js'
import { renderNftTable } from '../backend/nftables/render-nft.js'
import { ROUTE_LINE, ruleLine } from '../backend/routing.js'
import type { Drift, IptablesRead, LoRead, NftablesRead, Reads, RoutingRead } from '../backend/types.js'
import { otherTables } from '../backend/whole-path.js'
import { describeEscapes, findEscapes, type AcceptedPrograms } from '../path/analyze.js'
import { parseSave, seenTables } from '../path/from-iptables.js'
import { ipsetName } from '../plan/owned.js'
import type { Plan } from '../plan/types.js'

const NFT_FAMILY = { ipv4: 'ip', ipv6: 'ip6' } as const

/** Each family's chains and jumps, then our service sets; a family's whole-path escapes follow its own diff. */
const iptablesDrift = (plan: Plan, read: IptablesRead, accepted: AcceptedPrograms): Drift[] => {
  const families = plan.families.map(p => {
    const text = read.saved.get(p.family) ?? ''
    // Our variant's tables are seen from its -save text; nft must not show them a second time.
    const ownTables = new Set([...parseSave(text).keys()].map(name => `${NFT_FAMILY[p.family]} ${name}`))
    const seen = [...seenTables(text, p.family, read.tool), ...otherTables(p.family, read.elsewhere, ownTables)]
    const whole = describeEscapes(findEscapes(p, seen, ownRules(read.tool, p.family), accepted))
    const owned = ownedIn({ name: read.tool }, p.family, text)
    return { scope: p.family, drift: [...compareState(renderState(p), owned), ...whole], ...(owned.size === 0 && { absent: true }) }
  })
  const sets = plan.families.flatMap(f => f.sets)
  if (sets.length === 0) return families
  const live = read.sets ?? new Map()
  const drift = sets.flatMap(set => {
    const name = ipsetName(set.family, set.withPorts)
    const have = live.get(name)
    return have ? memberDiff(`set ${name}:`, ipsetMembers(set), have.members) : [`set ${name}: missing`]
  })
  return [...families, { scope: 'ipset', drift, ...(live.size === 0 && { absent: true }) }]
}

/** Our table, then whatever in other tables, families or devices lets captured TCP escape. */
const nftablesDrift = (plan: Plan, read: NftablesRead, accepted: AcceptedPrograms): Drift[] => {
  const ours = ourTable(read.ruleset)
  const escapes = plan.families.flatMap(p => findEscapes(p, otherTables(p.family, read.elsewhere, new Set([OUR_NFT_TABLE])), undefined, accepted))
  return [
    { scope: NFT_SCOPE, drift: [...diffTable(renderNftTable(plan), ours), ...describeEscapes(escapes)], ...(ours === undefined && { absent: true }) },
  ]
}

const routingDrift = ({ family, routing, rule, route, foreign }: RoutingRead): Drift => ({
  scope: `${family} routing`,
  ...(!rule && !route && { absent: true }),
  drift: [
    ...(rule ? [] : [`- ip rule: ${ruleLine(routing)}`]),
    ...(route ? [] : [`- ip route table ${routing.table}: ${ROUTE_LINE[family]}`]),
    ...foreign.map(l => `+ ip route table ${routing.table}: ${l} (not ours)`),
  ],
})

const loDrift = ({ address, present }: LoRead): Drift => ({ scope: 'lo', drift: present ? [] : [`- address ${address} on lo: missing`] })

/**
 * driftOf compares the plan with what was read, scope by scope (rules, then routing, then lo); a scope's drift is
 * empty when the kernel holds exactly the plan there. `accepted` are the BPF programs the whole-path check takes
 * unjudged. Pure; throws EnvironmentError for a chain, table or set that has our name but is not ours.
 */
export const driftOf = (plan: Plan, reads: Reads, accepted: AcceptedPrograms = new Set()): Drift[] => [
  ...(reads.iptables ? iptablesDrift(plan, reads.iptables, accepted) : []),
  ...(reads.nftables ? nftablesDrift(plan, reads.nftables, accepted) : []),
  ...(reads.routing ?? []).map(routingDrift),
  ...(reads.lo ? [loDrift(reads.lo)] : []),
]
