// The native nftables backend: our own `inet` table, replaced whole in one `nft -f -` transaction (both families
// at once, atomically), read back from `nft list ruleset` and compared as text, removed whole by clean. The ruleset
// is read whole (one process, as `list table` would be) because the whole-path check needs every other table too.

import { ApplyError, EnvironmentError } from '../../errors.js'
import { describeEscapes, findEscapes, type AcceptedPrograms } from '../../path/analyze.js'
import { NFT_TABLE, NFT_TABLE_COMMENT } from '../../plan/owned.js'
import { renderNftTable, renderNftTransaction } from './render-nft.js'
import type { Plan } from '../../plan/types.js'
import { diffSection, memberDiff } from '../compare.js'
import type { HostFs } from '../detect.js'
import { CommandFailed, type Exec } from '../../exec/exec.js'
import { runNft } from './classify.js'
import type { RuleBackend } from '../types.js'
import { otherTables, readElsewhere, readRuleset, type Ruleset } from '../whole-path.js'
import { readDeviceHooks } from '../devices.js'
import type { SeenTable } from '../../path/model.js'

const SCOPE = 'inet'

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

const OURS = `inet ${NFT_TABLE}`

/** Our table's text in the ruleset, or undefined when there is none; a table with our name but not our comment is refused. */
const ourTable = (ruleset: Ruleset): string | undefined => {
  const table = ruleset.tables.find(t => `${t.family} ${t.name}` === OURS)
  if (table && table.comment !== NFT_TABLE_COMMENT) {
    throw new EnvironmentError(
      `table ${OURS} has our name but is not ours (it lacks the comment "${NFT_TABLE_COMMENT}"): rename or remove it; nothing was changed`,
    )
  }
  return table?.text
}

export const createNftablesRules = (exec: Exec, fs: HostFs, accepted: AcceptedPrograms = new Set()): RuleBackend => {
  const run = async (payload: string): Promise<void> => {
    try {
      await runNft(exec, ['-f', '-'], payload)
    } catch (error) {
      if (!(error instanceof CommandFailed)) throw error
      throw new ApplyError(`inet: nft refused the transaction: ${error.stderr.trim().split('\n').slice(0, 3).join(' ')}`, { cause: error })
    }
  }
  const diff = (desired: string, live: string | undefined): string[] => {
    if (live === undefined) return [`table ${OURS}: missing`]
    const [want, have] = [splitElements(desired), splitElements(live)]
    const sets = [...new Set([...want.elements.keys(), ...have.elements.keys()])]
    return [
      ...diffSection(`table ${OURS}:`, want.structure, have.structure),
      ...sets.flatMap(set => memberDiff(`set ${set} elements:`, want.elements.get(set) ?? [], have.elements.get(set) ?? [])),
    ]
  }
  const escapes = async (plan: Plan, ruleset: Ruleset, devices?: readonly SeenTable[]): Promise<string[]> => {
    const elsewhere = await readElsewhere(
      exec,
      fs,
      plan.families.map(p => p.family),
      'nftables',
      ruleset,
      devices,
    )
    return describeEscapes(plan.families.flatMap(p => findEscapes(p, otherTables(p.family, elsewhere, new Set([OURS])), undefined, accepted)))
  }
  // When apply changed nothing, its read (made under the namespace lock in this same run) is the read-back too.
  let unchanged: Ruleset | undefined
  // The devices are read beside apply's first read (our transaction never touches them), and a failure to read
  // them stops init before anything is written.
  let devices: readonly SeenTable[] | undefined
  return {
    name: 'nftables',
    apply: async plan => {
      const desired = renderNftTable(plan)
      const [before, read] = await Promise.all([readRuleset(exec), readDeviceHooks(exec)])
      devices = read
      const changed = diff(desired, ourTable(before)).length > 0
      unchanged = changed ? undefined : before
      if (changed) await run(renderNftTransaction(desired))
      const rules = desired.split('\n').filter(l => l.startsWith('\t\t') && !l.includes(' hook ')).length
      return [{ scope: SCOPE, count: rules, unit: 'rules', where: `table ${OURS}`, changed }]
    },
    readBack: async plan => {
      const ruleset = unchanged ?? (await readRuleset(exec))
      const read = devices
      unchanged = devices = undefined
      const ours = ourTable(ruleset)
      return [
        {
          scope: SCOPE,
          drift: [...diff(renderNftTable(plan), ours), ...(await escapes(plan, ruleset, read))],
          ...(ours === undefined && { absent: true }),
        },
      ]
    },
    clean: async () => {
      const existed = ourTable(await readRuleset(exec)) !== undefined
      if (existed) await run(renderNftTransaction(undefined))
      return [`inet: ${existed ? `removed table ${OURS}` : 'nothing of ours was there'}`]
    },
  }
}
