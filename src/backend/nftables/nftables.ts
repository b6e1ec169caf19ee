// The native nftables backend: our own `inet` table, written in one `nft -f -` transaction (both families at once,
// atomically; made whole the first time, then changed in place so its base chains stay registered), read from
// `nft list ruleset` and compared as text, removed whole by clean. The ruleset is read whole (one process, as
// `list table` would be) because the whole-path check needs every other table too.

import { ApplyError, EnvironmentError } from '../../errors.js'
import { NFT_TABLE, NFT_TABLE_COMMENT } from '../../plan/owned.js'
import { renderNftApply, renderNftTable, renderNftTransaction } from './render-nft.js'
import type { Plan } from '../../plan/types.js'
import { diffSection, memberDiff } from '../compare.js'
import type { HostFs } from '../detect.js'
import { CommandFailed, type Exec } from '../../exec/exec.js'
import { classifyNft, runNft } from './classify.js'
import type { RuleBackend } from '../types.js'
import { readElsewhere, readRuleset, type Ruleset } from '../whole-path.js'
import { readDeviceHooks } from '../devices.js'
import { legacyNamesOnce, type LegacyNamesOnce } from '../legacy-names.js'

/** The scope the nftables backend reports on: its one table holds both families. */
export const NFT_SCOPE = 'inet'

/** renderNftPayload: what apply sends into a namespace without our table. Pure. */
export const renderNftPayload = (plan: Plan): string => `# nft -f -\n${renderNftTransaction(renderNftTable(plan))}`

/**
 * Set elements are printed sorted and wrapped over lines, however they were written: compare them as sets of
 * elements (memberDiff), and the rest of the table as text.
 */
const splitElements = (text: string): { structure: string[]; elements: Map<string, string[]> } => {
  const elements = new Map<string, string[]>()
  const structure: string[] = []
  let set = ''
  let pending: string | undefined
  for (const line of text.trimEnd().split('\n')) {
    set = /^\tset (\S+) \{$/.exec(line)?.[1] ?? set
    if (pending === undefined && !line.startsWith('\t\telements = {')) {
      structure.push(line)
      continue
    }
    pending = `${pending ?? ''} ${line}`
    if (!line.includes('}')) continue
    const body = pending.slice(pending.indexOf('{') + 1, pending.lastIndexOf('}'))
    elements.set(
      set,
      body
        .split(',')
        .map(e => e.trim())
        .filter(Boolean),
    )
    pending = undefined
  }
  return { structure, elements }
}

/** Our table as the ruleset names it. */
export const OUR_NFT_TABLE = `inet ${NFT_TABLE}`
const OURS = OUR_NFT_TABLE

/** Our table's text in the ruleset, or undefined when there is none; a table with our name but not our comment is refused. Pure. */
export const ourTable = (ruleset: Ruleset): string | undefined => {
  const table = ruleset.tables.find(t => `${t.family} ${t.name}` === OURS)
  if (table && table.comment !== NFT_TABLE_COMMENT) {
    throw new EnvironmentError(
      `table ${OURS} has our name but is not ours (it lacks the comment "${NFT_TABLE_COMMENT}"): rename or remove it; nothing was changed`,
    )
  }
  return table?.text
}

/** diffTable: our table as planned against as read (undefined: absent), structure as text and set elements as sets. Pure. */
export const diffTable = (desired: string, live: string | undefined): string[] => {
  if (live === undefined) return [`table ${OURS}: missing`]
  const [want, have] = [splitElements(desired), splitElements(live)]
  const sets = [...new Set([...want.elements.keys(), ...have.elements.keys()])]
  return [
    ...diffSection(`table ${OURS}:`, want.structure, have.structure),
    ...sets.flatMap(set => memberDiff(`set ${set} elements:`, want.elements.get(set) ?? [], have.elements.get(set) ?? [])),
  ]
}

/** removalOf: what clean sends, from the ruleset read (read's own reader): our table deleted; undefined when it is not there. Pure; refuses a table with our name that is not ours. */
export const removalOf = (ruleset: Ruleset): string | undefined => (ourTable(ruleset) === undefined ? undefined : renderNftTransaction(undefined))

/** `legacyNames`: legacy's lists of tables as this run read them, for the whole-path read of legacy's tables. */
export const createNftablesRules = (exec: Exec, fs: HostFs, legacyNames: LegacyNamesOnce = legacyNamesOnce(fs)): RuleBackend => {
  const run = async (payload: string): Promise<void> => {
    try {
      await runNft(exec, ['-f', '-'], payload)
    } catch (error) {
      if (!(error instanceof CommandFailed)) throw error
      throw new ApplyError(`inet: nft refused the transaction: ${error.stderr.trim().split('\n').slice(0, 3).join(' ')}`, { cause: error })
    }
  }
  return {
    name: 'nftables',
    classify: classifyNft,
    render: renderNftPayload,
    apply: async plan => {
      const desired = renderNftTable(plan)
      // The devices are read beside the first read (our transaction never touches them), and a failure to read
      // them stops init before anything is written.
      const [before, devices] = await Promise.all([readRuleset(exec), readDeviceHooks(exec)])
      const live = ourTable(before)
      const changed = diffTable(desired, live).length > 0
      if (changed) await run(renderNftApply(desired, live))
      const rules = desired.split('\n').filter(l => l.startsWith('\t\t') && !l.includes(' hook ')).length
      // When nothing changed, this read (made under the namespace lock in this same run) is the read-back too.
      const known = { nftables: { devices, ...(!changed && { ruleset: before }) } }
      return { applied: [{ scope: NFT_SCOPE, count: rules, unit: 'rules', where: `table ${OURS}`, changed }], known }
    },
    read: async (plan, known) => {
      const reused = known?.nftables
      const ruleset = reused?.ruleset ?? (await readRuleset(exec))
      const families = plan.families.map(p => p.family)
      return { nftables: { ruleset, elsewhere: await readElsewhere(exec, legacyNames, families, 'nftables', ruleset, reused?.devices) } }
    },
    clean: async () => {
      const removal = removalOf(await readRuleset(exec))
      if (removal !== undefined) await run(removal)
      return [`inet: ${removal === undefined ? 'nothing of ours was there' : `removed table ${OURS}`}`]
    },
  }
}
