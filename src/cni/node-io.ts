// The node side's reach into a pod: our CLI and the rule tools, run in the pod's netns through nsenter. The agent
// keeps the node's mounts (nsenter --net only), so the CLI and its native modules are the agent's own files.

import { stat } from 'node:fs/promises'
import { realExec } from '../exec/exec.js'
import { onPath } from '../exec/on-path.js'
import { runForStatus } from '../exec/processes.js'
import { hasOwnedComment, isOwnedChain, NFT_TABLE } from '../plan/owned.js'
import { readServicesFile } from '../settings/services-file.js'
import { firstLine } from '../text.js'
import type { AgentIo } from './handle.js'

const SAVES = ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']
// What ADD runs: nsenter to enter the netns, and the rule tools init needs.
const TOOLS = ['nsenter', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'ip6tables-save']

const isOurs = (line: string): boolean =>
  isOwnedChain(/^:(\S+)/.exec(line)?.[1] ?? '') || hasOwnedComment(line) || line.startsWith(`table inet ${NFT_TABLE}`)

/** nodeIo runs `cli` (the bundled CLI this agent was started from) with this Node in pods' netns. */
export const nodeIo = (cli: string, timeoutMs: number): AgentIo => ({
  runCli: async (netns, command, env) => {
    const args = [`--net=${netns}`, '--wd=/', process.execPath, cli, command]
    const result = await runForStatus('nsenter', args, { PATH: process.env['PATH'], ...env })
    return { exitCode: result.exitCode, output: result.output }
  },
  netnsExists: path =>
    stat(path).then(
      () => true,
      () => false,
    ),
  ownedRules: async netns => {
    const texts = await Promise.all(
      [...SAVES.map(save => [save]), ['nft', 'list', 'ruleset']].map(([tool = '', ...args]) =>
        realExec('nsenter', [`--net=${netns}`, tool, ...args], '', { timeoutMs }).then(
          r => r.stdout,
          () => '',
        ),
      ),
    )
    return texts.flatMap(text =>
      text
        .split('\n')
        .map(line => line.trim())
        .filter(isOurs),
    )
  },
  missingTools: async () => {
    const found = await Promise.all(TOOLS.map(onPath))
    const missing = TOOLS.filter((_, i) => !found[i])
    if (missing.includes('nsenter')) return missing
    // On PATH is not enough: entering a netns takes CAP_SYS_ADMIN, and without it every ADD fails. Entering our own
    // netns and running nsenter itself proves it, at no cost to any pod.
    const entered = await runForStatus('nsenter', ['--net=/proc/self/ns/net', 'nsenter', '--version'], { PATH: process.env['PATH'] })
    if (entered.exitCode === 0) return missing
    return [`nsenter (it cannot enter a network namespace: ${firstLine(entered.output)}; the agent needs CAP_SYS_ADMIN)`, ...missing]
  },
  readServices: readServicesFile,
})
