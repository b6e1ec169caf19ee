// The iptables backends (nf_tables and legacy variants): read a family's tables with -save, change them with one
// `-restore --noflush` transaction on stdin. No temp files: the root filesystem may be read-only.

import { ApplyError } from '../errors.js'
import type { Family } from '../settings/types.js'
import { CommandFailed, type Exec } from './exec.js'

export type Variant = 'nft' | 'legacy'

export interface IptablesBackend {
  readonly name: `iptables-${Variant}`
  /** The whole iptables-save text of one family. Never `-t nat`: that makes legacy create the table. */
  save(family: Family): Promise<string>
  /** Applies one restore payload atomically; throws ApplyError naming the refused line. */
  restore(family: Family, payload: string): Promise<void>
}

const tool = (family: Family, variant: Variant, verb: 'save' | 'restore'): string =>
  `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${variant}-${verb}`

const refusal = (family: Family, payload: string, error: CommandFailed): ApplyError => {
  const line = error.line === undefined ? undefined : payload.split('\n')[error.line - 1]
  const where = line === undefined ? '' : ` at line ${error.line} (${line})`
  return new ApplyError(`${family}: the kernel refused the transaction${where}: ${error.stderr.trim().split('\n')[0]}`, {
    cause: error,
  })
}

export const createIptablesBackend = (exec: Exec, variant: Variant): IptablesBackend => ({
  name: `iptables-${variant}`,
  save: async family => (await exec(tool(family, variant, 'save'), [])).stdout,
  restore: async (family, payload) => {
    try {
      // -w: wait for the legacy xtables lock rather than fail when another tool holds it.
      await exec(tool(family, variant, 'restore'), ['--noflush', '-w', '5'], payload)
    } catch (error) {
      throw error instanceof CommandFailed ? refusal(family, payload, error) : error
    }
  },
})
