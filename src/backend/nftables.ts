// The native nftables backend: our own `inet` table, replaced whole in one `nft -f -` transaction (both families
// at once, atomically), read back with `nft list table` and compared as text, removed whole by clean.

import { ApplyError } from '../errors.js'
import { NFT_TABLE, renderNftTable, renderNftTransaction } from '../plan/render-nft.js'
import type { Plan } from '../plan/types.js'
import { lineDiff } from '../verify/compare.js'
import { CommandFailed, type Exec } from './exec.js'
import type { RuleBackend } from './types.js'

const SCOPE = 'inet'

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
    const want = desired.trimEnd().split('\n')
    const have = live.trimEnd().split('\n')
    return want.length === have.length && want.every((l, i) => l === have[i]) ? [] : [`table inet ${NFT_TABLE}:`, ...lineDiff(want, have)]
  }
  return {
    name: 'nftables',
    apply: async plan => {
      const desired = renderNftTable(plan)
      const changed = diff(desired, await read()).length > 0
      if (changed) await run(renderNftTransaction(desired))
      const rules = desired.split('\n').filter(l => l.startsWith('\t\t') && !l.includes(' hook ')).length
      return [{ scope: SCOPE, rules, where: `table inet ${NFT_TABLE}`, changed }]
    },
    readBack: async plan => [{ scope: SCOPE, drift: diff(renderNftTable(plan), await read()) }],
    clean: async () => {
      const existed = (await read()) !== undefined
      if (existed) await run(renderNftTransaction(undefined))
      return [`inet: ${existed ? `removed table inet ${NFT_TABLE}` : 'nothing of ours was there'}`]
    },
  }
}
