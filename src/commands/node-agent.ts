// node-agent: the node side of the CNI plugin (one per node, e.g. a DaemonSet on the host network with the host's
// /run/netns and the socket's directory mounted). The plugin on the host is a small static forwarder; everything that needs Node.js
// and the rule tools runs here. Serves until SIGTERM or SIGINT.

import { nodeIo } from '../cni/node-io.js'
import { startNodeAgent } from '../cni/server.js'
import type { Logger } from '../log.js'
import type { NodeAgentSettings, Settings } from '../settings/types.js'

export const runNodeAgent = async (settings: Settings, agent: NodeAgentSettings, logger: Logger): Promise<number> => {
  // The CLI this process was started from is the one run in pods' netns: one version of the rules on a node.
  const cli = process.argv[1] ?? ''
  const server = await startNodeAgent(agent.socket, nodeIo(cli, settings.execTimeout * 1000), logger)
  logger.event('listening', `node agent on ${agent.socket} runs ${cli} in pods' netns for CNI requests`)
  const signal = await new Promise<NodeJS.Signals>(resolve => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
  })
  await server.close()
  logger.event('stopped', `node agent stopped on ${signal}`)
  return 0
}
