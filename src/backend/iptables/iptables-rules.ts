// The iptables backends behind the RuleBackend interface: one restore per family (see apply.ts), read with -save
// (with our ipsets and every other place the whole-path check looks), cleaned by removing our chains and jumps
// family by family. The explicit method's service sets are ipsets, swapped in before the rules that match them and
// swapped back on a rollback.

import { ApplyError, EnvironmentError } from '../../errors.js'
import { ipsetName, ipsetNextName, TABLES, type Table } from '../../plan/owned.js'
import {
  ipsetMembers,
  isOwnedIpset,
  parseIpsetSave,
  parseIpsetTerse,
  renderIpsetDone,
  renderIpsetSwap,
  renderIpsetUndo,
  type SavedSet,
} from './render-ipset.js'
import { EMPTY_STATE, renderState, renderTransaction, type OwnedState } from './render-iptables.js'
import type { FamilyPlan, Plan, ServiceSet } from '../../plan/types.js'
import type { Family } from '../../settings/types.js'
import { applyFamilies, type FamilyTarget } from './apply.js'
import { removalOf, renderSetRemoval, setsOfOurs } from './undo.js'
import type { HostFs } from '../detect.js'
import { CommandFailed, type Exec } from '../../exec/exec.js'
import { runNft } from '../nftables/classify.js'
import { classifyIptables, runIpset } from './classify.js'
import { createIptablesBackend, type Variant } from './iptables.js'
import type { RuleBackend } from '../types.js'
import { readElsewhere, readRuleset, type Elsewhere } from '../whole-path.js'
import { neededBy, renderEmptyCreated, renderMissing } from './created.js'
import { firstLine, messageOf } from '../../text.js'
import { legacyNamesOnce, type LegacyNamesOnce } from '../legacy-names.js'

const targetsOf = (plan: Plan): FamilyTarget[] => plan.families.map(p => ({ plan: p, desired: renderState(p) }))

/** The tables a family's rules are written in, from its plan's chains: nothing rendered. */
const tablesOf = (plan: FamilyPlan): Table[] => TABLES.filter(table => plan.chains.some(c => c.table === table))

const chainsOf = (state: OwnedState): [string, readonly string[]][] => [...state.values()].flatMap(t => [...t.chains])

const ruleCount = (target: FamilyTarget): number => chainsOf(target.desired).reduce((sum, [, rules]) => sum + rules.length, 0)

/** Our sets as `ipset save` shows them, refusing a set that has one of our names but is someone else's. */
const ownedSets = (saved: ReadonlyMap<string, SavedSet>, names: readonly string[]): Map<string, SavedSet> => {
  const ours = new Map<string, SavedSet>()
  for (const name of names) {
    const set = saved.get(name)
    if (set === undefined) continue
    if (!isOwnedIpset(set))
      throw new EnvironmentError(`ipset ${name} has our name but is not ours (${set.header}): rename or remove it; nothing was changed`)
    ours.set(name, set)
  }
  return ours
}

const setNames = (sets: readonly ServiceSet[]): string[] =>
  sets.flatMap(s => [ipsetName(s.family, s.withPorts), ipsetNextName(ipsetName(s.family, s.withPorts))])

const RESTORE = { ipv4: 'iptables-restore', ipv6: 'ip6tables-restore' } as const

/** renderIptablesPayload: what apply sends into a namespace without our rules: the sets first (the rules refer to them), then one restore per family. Pure. */
export const renderIptablesPayload = (plan: Plan): string => {
  const sets = plan.families.flatMap(f => f.sets)
  const ipset = sets.length === 0 ? [] : [`# ipset restore\n${renderIpsetSwap(sets)}`]
  const rules = plan.families.map(p => `# ${p.family}: ${RESTORE[p.family]} --noflush\n${renderTransaction(renderState(p), EMPTY_STATE)}`)
  return [...ipset, ...rules].join('\n')
}

/**
 * `ipv4Saved` is iptables-save text already read while choosing the variant, so the first apply does not read it
 * twice; `legacyNames`, legacy's lists of tables as this run read them (detection's, when it read them).
 */
export const createIptablesRules = (
  exec: Exec,
  fs: HostFs,
  variant: Variant,
  ipv4Saved?: string,
  legacyNames: LegacyNamesOnce = legacyNamesOnce(fs),
): RuleBackend => {
  const tables = createIptablesBackend(exec, variant, fs, legacyNames)
  const refusedBy =
    (verb: string) =>
    (error: unknown): never => {
      if (error instanceof CommandFailed) throw new ApplyError(`ipset ${verb} refused: ${firstLine(error.stderr)}`, { cause: error })
      throw error
    }
  const ipset = (args: string[], input?: string): Promise<string> => runIpset(exec, args, input).then(r => r.stdout, refusedBy(args[0] ?? ''))
  const nft = async (script: string): Promise<void> => {
    try {
      await runNft(exec, ['-f', '-'], script)
    } catch (error) {
      if (error instanceof CommandFailed)
        throw new ApplyError(`nft refused to make the tables iptables-nft writes into: ${firstLine(error.stderr)}`, { cause: error })
      throw error
    }
  }
  // iptables-nft only (see created.ts): make, marked, the tables and built-in chains a restore would make, from the
  // ruleset read beside the first reads; later, delete the marked ones that hold nothing. True when it made any.
  const makeMissing = async (changing: readonly FamilyTarget[], elsewhere: Promise<Elsewhere>): Promise<boolean> => {
    if (variant !== 'nft' || changing.length === 0) return false
    const script = renderMissing(
      changing.flatMap(t => neededBy(t.plan.family, t.desired)),
      (await elsewhere).ruleset.tables,
    )
    if (script === undefined) return false
    await nft(script)
    return true
  }
  /** Returns what went, as `delete ...` lines. */
  const dropEmptyCreated = async (plan: Plan): Promise<string[]> => {
    if (variant !== 'nft') return []
    const script = renderEmptyCreated(
      (await readRuleset(exec)).tables,
      plan.families.map(p => p.family),
    )
    if (script === undefined) return []
    await nft(script)
    return script.trim().split('\n')
  }
  // The one reader of our state, for apply (its first read and a rollback's), verify and clean: each family's
  // tables the plan writes, and every set `ipset save` shows.
  const readSaved = async (plan: Plan): Promise<Map<Family, string>> => {
    const saved = await Promise.all(plan.families.map(p => tables.save(p.family, tablesOf(p))))
    return new Map(plan.families.map((p, i) => [p.family, saved[i]!]))
  }
  const readSets = async (): Promise<Map<string, SavedSet>> => parseIpsetSave((await runIpset(exec, ['save'])).stdout)
  // Detection's read is used by the first apply only: a later one reads afresh.
  let ipv4Pending = ipv4Saved
  const readOthers = (plan: Plan): Promise<Elsewhere> =>
    readElsewhere(
      exec,
      legacyNames,
      plan.families.map(p => p.family),
      variant,
    )
  return {
    name: tables.name,
    classify: classifyIptables,
    render: renderIptablesPayload,
    apply: async plan => {
      let made = false
      const sets = plan.families.flatMap(f => f.sets)
      // Only the headers: enough to tell ours from a foreign set with our name, and cheap at 100,000 members.
      const before = sets.length > 0 ? ownedSets(parseIpsetTerse(await ipset(['list', '-t'])), setNames(sets)) : new Map<string, SavedSet>()
      if (sets.length > 0) await ipset(['restore'], renderIpsetSwap(sets))
      // The whole-path check's places outside our variant are read beside apply's first reads, not after the write:
      // apply writes only our variant's tables (and our sets), never native nftables or the other variant, so a read
      // after it shows the same unless another program writes there meanwhile (a change the next `verify` sees, as
      // it would one made after init exits), one round of processes later. An unchanged re-run is then one round.
      // A family's first read waits for them too, so a failure to read them stops init before any rule is written
      // (service sets swapped in and TPROXY routes added first are undone, as on any refusal).
      const elsewhere = readOthers(plan)
      const targets = targetsOf(plan)
      const planTables = new Map(plan.families.map(p => [p.family, tablesOf(p)]))
      const firstReads = new Map<Family, string>()
      const firstRead = async (family: Family): Promise<string> => {
        const pending = family === 'ipv4' ? ipv4Pending : undefined
        ipv4Pending = undefined
        const [saved] = await Promise.all([pending ?? tables.save(family, planTables.get(family) ?? []), elsewhere])
        firstReads.set(family, saved)
        return saved
      }
      const prepare = async (changing: readonly FamilyTarget[]): Promise<void> => {
        made = await makeMissing(changing, elsewhere)
      }
      const outcomes = await applyFamilies(tables, targets, firstRead, prepare).catch(async (error: unknown) => {
        // The tables and chains made for rules that were refused (or rolled back) go again, if empty.
        if (made)
          await dropEmptyCreated(plan).catch((undo: unknown) => {
            throw new ApplyError(`${messageOf(error)}; then removing the empty tables we made failed too: ${messageOf(undo)}`, { cause: error })
          })
        // The rules that would match the new sets were not applied (or were rolled back): so go the new sets.
        if (sets.length > 0) {
          await ipset(['restore'], renderIpsetUndo(sets, new Set(before.keys()))).catch((undo: unknown) => {
            throw new ApplyError(`${messageOf(error)}; then putting the service sets back failed too: ${messageOf(undo)}`, { cause: error })
          })
        }
        throw error
      })
      if (sets.length > 0) await ipset(['restore'], renderIpsetDone(sets))
      // A family apply left untouched is read back from apply's own read: it was made under the namespace lock in
      // this same run, so nothing of ours can have changed since, and a second read would only cost a process.
      const unchanged = new Map(outcomes.flatMap(o => (o.changed ? [] : [[o.family, firstReads.get(o.family)!] as const])))
      const known = { iptables: { saved: unchanged, elsewhere: await elsewhere } }
      const families = targets.map((t, i) => ({
        scope: t.plan.family,
        count: ruleCount(t),
        unit: 'rules' as const,
        where: chainsOf(t.desired)
          .map(([name]) => name)
          .join(', '),
        changed: outcomes[i]?.changed ?? false,
      }))
      // Sets are swapped in every time: the swap is atomic and cheap, and a changed list must always land.
      const members = sets.reduce((sum, set) => sum + ipsetMembers(set).length, 0)
      const applied =
        sets.length > 0
          ? [...families, { scope: 'ipset', count: members, unit: 'members' as const, where: `${sets.length} sets`, changed: true }]
          : families
      return { applied, known }
    },
    read: async (plan, known) => {
      const sets = plan.families.flatMap(f => f.sets)
      const reused = known?.iptables
      const [live, elsewhere, saved] = await Promise.all([
        sets.length > 0 ? readSets().then(all => ownedSets(all, setNames(sets)), refusedBy('save')) : undefined,
        reused?.elsewhere ?? readOthers(plan),
        // What apply left untouched is not read again.
        readSaved({ families: plan.families.filter(p => !reused?.saved.has(p.family)) }),
      ])
      const byFamily = new Map(plan.families.map(p => [p.family, reused?.saved.get(p.family) ?? saved.get(p.family)!]))
      return { iptables: { tool: tables.name, saved: byFamily, ...(live && { sets: live }), elsewhere } }
    },
    clean: async plan => {
      // Read with the reader apply and verify use, each family's tables and every set, then removalOf and
      // setsOfOurs decide what goes. Everything is read and judged before anything is removed, so a refusal changes
      // nothing in any family. The reads are one round of processes, and so are the removals, family beside family:
      // a pod's DEL waits for two rounds, not four.
      const [saved, sets] = await Promise.all([
        readSaved(plan),
        // Without ipset there are no sets of ours.
        readSets().catch((error: unknown) => {
          if (error instanceof EnvironmentError) return new Map<string, SavedSet>()
          throw error
        }),
      ])
      const removals = plan.families.map(p => removalOf(tables.name, p.family, saved.get(p.family) ?? ''))
      const removed = await Promise.allSettled(
        removals.map(async ({ family, chains, jumps, payload }) => {
          if (payload !== undefined) await tables.restore(family, payload)
          return `${family}: ${payload === undefined ? 'nothing of ours was there' : `removed ${chains} chains and ${jumps} jumps`}`
        }),
      )
      const refused = removed.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (refused) throw refused.reason
      const lines = removed.map(r => (r as PromiseFulfilledResult<string>).value)
      const dropped = await dropEmptyCreated(plan)
      if (dropped.length > 0)
        lines.push(`nf_tables: removed what init made for iptables-nft and left empty: ${dropped.map(l => l.replace(/^delete /, '')).join(', ')}`)
      const ours = setsOfOurs(sets)
      const destroy = renderSetRemoval(ours)
      if (destroy !== undefined) {
        await ipset(['restore'], destroy)
        lines.push(`ipset: removed ${ours.join(', ')}`)
      }
      return lines
    },
  }
}
