// How nft fails, told apart once, where the seam hands back a failure (runNft passes it to every nft we start). nft exits 1 for
// every failure, so its first words decide: "(you must be root)" or a netlink EPERM is a missing right, and a
// kernel without nf_tables answers "Operation not supported" (or "Protocol not supported") when the cache is read.
// Only nft's own prefixes count, not a rule's comment echoed further down. nft never calls setlocale(), so its
// words are English whatever the locale. This file is one of the few the architecture test allows to read text.

import type { Classify, Exec, ExecResult } from '../../exec/exec.js'

// An error line is "Error: ...", after "netlink: " or an input location ("/dev/stdin:3:1-20: "), never after a space.
const DENIED = /\(you must be root\)|^(?:\S+: )?(?:netlink: )?Error: [^\n]*Operation not permitted/m
const UNSUPPORTED = /^(?:\S+: )?(?:netlink: )?Error: [^\n]*not supported/im

/** classifyNft: the reason nft failed. Pure. */
export const classifyNft: Classify = ({ stderr }) => {
  if (DENIED.test(stderr)) return { reason: 'not-permitted' }
  if (UNSUPPORTED.test(stderr)) return { reason: 'unsupported' }
  return { reason: 'refused' }
}

/** runNft runs nft through the seam with its classify: every nft we start goes through here. */
export const runNft = (exec: Exec, args: readonly string[], input?: string): Promise<ExecResult> =>
  exec('nft', args, input, { classify: classifyNft })
