// The native nftables backend: our own `inet` table, replaced whole in one `nft -f -` transaction (both families
// at once, atomically), read back with `nft list table` and compared as text, removed whole by clean.

import { ApplyError } from '../errors.js'
import { NFT_TABLE, renderNftTable, renderNftTransaction } from '../plan/render-nft.js'
import type { Plan } from '../plan/types.js'
import { diffSection, memberDiff } from '../verify/compare.js'
import { CommandFailed, type Exec } from './exec.js'
import type { RuleBackend } from './types.js'

const SCOPE = 'inet'

/**
 * Set elements are printed sorted and wrapped over lines, however they were written: compare them as sorted lists,
 * and the rest of the table as text.
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
    elements.set(set, body.split(',').map(e => e.trim()).filter(Boolean).sort())
    pending = undefined
  }
  return { structure, elements }
}

export const createNftablesRules = (exec: Exec): RuleBackend => {
  /** Our table as nft prints it (UIDs stay numeric: nft names them only with -u), or undefined when there is none. */
  const read = async (): Promise<string | undefined> => {
    try {
      return (await exec('nft', ['list', 'table', 'inet', NFT_TABLE])).stdout
    } catch (error) {
      if (error instanceof CommandFailed && /No such file or directory/.test(error.stderr)) return undefined
      throw error
    }
  }
  const run = async (payload: string): Promise<void> => {
    try {
      await exec('nft', ['-f', '-'], payload)
    } catch (error) {
      if (!(error instanceof CommandFailed)) throw error
      throw new ApplyError(`inet: nft refused the transaction: ${error.stderr.trim().split('\n').slice(0, 3).join(' ')}`, { cause: error })
    }
  }
  const diff = (desired: string, live: string | undefined): string[] => {
    if (live === undefined) return [`table inet ${NFT_TABLE}: missing`]
    const [want, have] = [splitElements(desired), splitElements(live)]
    const sets = [...new Set([...want.elements.keys(), ...have.elements.keys()])]
    return [
      ...diffSection(`table inet ${NFT_TABLE}:`, want.structure, have.structure),
      ...sets.flatMap(set => memberDiff(`set ${set} elements:`, want.elements.get(set) ?? [], have.elements.get(set) ?? [])),
    ]
  }
  return {
    name: 'nftables',
    apply: async plan => {
      const desired = renderNftTable(plan)
      const changed = diff(desired, await read()).length > 0
      if (changed) await run(renderNftTransaction(desired))
      const rules = desired.split('\n').filter(l => l.startsWith('\t\t') && !l.includes(' hook ')).length
      return [{ scope: SCOPE, count: rules, unit: 'rules', where: `table inet ${NFT_TABLE}`, changed }]
    },
    readBack: async plan => [{ scope: SCOPE, drift: diff(renderNftTable(plan), await read()) }],
    clean: async () => {
      const existed = (await read()) !== undefined
      if (existed) await run(renderNftTransaction(undefined))
      return [`inet: ${existed ? `removed table inet ${NFT_TABLE}` : 'nothing of ours was there'}`]
    },
  }
}
