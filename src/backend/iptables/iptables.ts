// The iptables backends (nf_tables and legacy variants): read a family's tables with -save, change them with one
// `-restore --noflush` transaction on stdin. No temp files: the root filesystem may be read-only.

import { ApplyError, EnvironmentError } from '../../errors.js'
import type { Family } from '../../settings/types.js'
import { CommandFailed, type Exec } from '../../exec/exec.js'
import { runIptables } from './classify.js'
import { firstLine } from '../../text.js'
import type { Table } from '../../plan/types.js'
import { isUnreadable, type LegacyNamesOnce } from '../legacy-names.js'

export type Variant = 'nft' | 'legacy'

export interface IptablesBackend {
  readonly name: `iptables-${Variant}`
  /**
   * The whole iptables-save text of one family. Never `-t nat`, which makes legacy create the table, unless legacy's
   * list of tables is unreadable here: then `tables`, those the plan writes, are read by name (see legacy-names.ts).
   */
  save(family: Family, tables: readonly Table[]): Promise<string>
  /** Applies one restore payload atomically; throws ApplyError naming the refused line. */
  restore(family: Family, payload: string): Promise<void>
}

/** The program one family and variant of iptables is read or written with. */
export const tool = (family: Family, variant: Variant, verb: 'save' | 'restore'): string =>
  `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${variant}-${verb}`

// A refusal as classifyIptables told it: a lock held too long and a missing extension are the environment's,
// anything else the kernel's answer to this transaction.
const refusal = (family: Family, payload: string, error: CommandFailed): ApplyError | EnvironmentError => {
  if (error.reason === 'busy') {
    return new EnvironmentError(`${family}: another program held the xtables lock for longer than iptables waited (-w 5); nothing was changed`, {
      cause: error,
    })
  }
  const extension = error.subject
  if (error.reason === 'missing-extension' && extension !== undefined) {
    return new EnvironmentError(
      `${family}: the "${extension}" extension is missing (the iptables package's libxt_${extension}.so, or the kernel's xt_${extension} module), so these rules cannot be written; nothing was changed`,
      { cause: error },
    )
  }
  const line = error.line === undefined ? undefined : payload.split('\n')[error.line - 1]
  const where = line === undefined ? '' : ` at line ${error.line} (${line})`
  return new ApplyError(`${family}: the kernel refused the transaction${where}: ${firstLine(error.stderr)}`, {
    cause: error,
  })
}

// The kernel's xt_owner takes a UID or GID match only from the user namespace that owns the netns (EINVAL
// otherwise, which iptables-nft-restore reports with an empty reason and legacy as "line N failed"): so a pod
// with hostUsers: false cannot be given owner rules from the node's user namespace. Translating the UIDs through
// the pod's uid_map would not help: the kernel compares them as the pod's own.
const OWNER_MATCH = /-m owner --(?:uid|gid)-owner /

const ownerRefusal = (family: Family, error: CommandFailed): ApplyError =>
  new ApplyError(
    `${family}: the kernel refused the owner (UID/GID) rules because this network namespace belongs to another user namespace (a pod with hostUsers: false), and the kernel takes an owner match only from the user namespace that owns the netns: run this inside the pod's user namespace (the CNI node agent does), or use ISTIO_BACKEND=nftables or ISTIO_OUTBOUND_METHOD=mark`,
    { cause: error },
  )

/**
 * `ownsNetns` is asked only when the kernel refused owner rules, to say why (HostFs.ownsNetns); `legacyNames` are
 * legacy's lists of tables as this run read them.
 */
export const createIptablesBackend = (
  exec: Exec,
  variant: Variant,
  fs: { readonly ownsNetns?: () => Promise<boolean> },
  legacyNames: LegacyNamesOnce,
): IptablesBackend => ({
  name: `iptables-${variant}`,
  save: async (family, tables) => {
    const save = tool(family, variant, 'save')
    if (variant === 'legacy' && tables.length > 0 && isUnreadable((await legacyNames())[family])) {
      // A table named here that is not there yet is made, empty: one the plan is about to write into (or, for
      // verify and clean, one init would have written). None other is named.
      const read = await Promise.all(tables.map(table => runIptables(exec, save, ['-t', table])))
      return read.map(r => r.stdout).join('')
    }
    return (await runIptables(exec, save, [])).stdout
  },
  restore: async (family, payload) => {
    try {
      // -w: wait for the legacy xtables lock rather than fail when another tool holds it.
      await runIptables(exec, tool(family, variant, 'restore'), ['--noflush', '-w', '5'], payload)
    } catch (error) {
      if (!(error instanceof CommandFailed)) throw error
      const refused = refusal(family, payload, error)
      if (refused instanceof ApplyError && OWNER_MATCH.test(payload) && fs.ownsNetns && !(await fs.ownsNetns().catch(() => true))) {
        throw ownerRefusal(family, error)
      }
      throw refused
    }
  },
})
