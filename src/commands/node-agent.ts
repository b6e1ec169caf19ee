// node-agent: the node side of the CNI plugin (one per node, e.g. a DaemonSet on the host network with the host's
// /run/netns and the socket's directory mounted). The plugin on the host is a small static forwarder; everything that
// needs Node.js and the rule tools runs here, in this one process (see cni/node-io.ts). It keeps the pods it captured
// captured (cni/keeper.ts) and serves Prometheus metrics when asked. Serves until SIGTERM or SIGINT.

import { availableParallelism } from 'node:os'
import { dirname } from 'node:path'
import { createFileStore, createKeeper, prepareStateDir } from '../cni/keeper.js'
import { createLimit, createSerial } from '../cni/limit.js'
import { createMetrics, serveMetrics } from '../cni/metrics.js'
import { createEngine } from '../cni/node-io.js'
import { startNodeAgent } from '../cni/server.js'
import type { Logger } from '../log.js'
import { readServicesFile } from '../settings/services-file.js'
import type { NodeAgentSettings, Settings } from '../settings/types.js'
import { messageOf } from '../text.js'
import { runRuleCommand } from './rules.js'

export const runNodeAgent = async (settings: Settings, agent: NodeAgentSettings, logger: Logger): Promise<number> => {
  // The CLI this process was started from is the one the live probe runs in pods: one version of the rules on a node.
  const cli = process.argv[1] ?? ''
  const stateDir = agent.stateDir ?? `${dirname(agent.socket)}/state`
  await prepareStateDir(stateDir)
  // A bug in one request's promise chain must not end the agent, and with it every other pod's request.
  process.on('unhandledRejection', error => logger.event('bug', `an unhandled rejection (please report it): ${messageOf(error)}`))

  const slots = agent.concurrency ?? 2 * availableParallelism()
  const deadlineMs = agent.deadlineSeconds * 1000
  const limit = createLimit(slots)
  const serial = createSerial()
  const engine = createEngine({ run: runRuleCommand, cli, stateDir, timeoutMs: settings.execTimeout * 1000, childTimeoutMs: deadlineMs })
  let captured = (): number => 0
  const metrics = createMetrics({ captured: () => captured(), running: () => limit.running, waiting: () => limit.waiting })
  const keeper = createKeeper({ engine, limit, serial, store: createFileStore(`${stateDir}/pods`), logger, metrics, deadlineMs })
  captured = () => keeper.size
  await keeper.resume()

  const server = await startNodeAgent(agent.socket, {
    io: { ...engine, readServices: readServicesFile, keep: keeper.keep, forget: keeper.forget },
    logger,
    limit,
    serial,
    metrics,
    deadlineMs,
  })
  const exporter = agent.metrics && (await serveMetrics(agent.metrics, metrics))
  const where = exporter && agent.metrics ? `; metrics on ${agent.metrics.host || '*'}:${exporter.port}${agent.metrics.path}` : ''
  logger.event(
    'listening',
    `node agent on ${agent.socket}: ${slots} pods at a time, rechecks every ${agent.recheckSeconds || 'never'}${agent.recheckSeconds ? ' s' : ''}${where}`,
  )

  let timer: NodeJS.Timeout | undefined
  let stopping = false
  const recheck = async (): Promise<void> => {
    await keeper.recheck()
    if (!stopping) timer = setTimeout(() => void recheck(), agent.recheckSeconds * 1000)
  }
  if (agent.recheckSeconds > 0) void recheck()

  const signal = await new Promise<NodeJS.Signals>(resolve => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
  })
  stopping = true
  clearTimeout(timer)
  await Promise.all([server.close(), exporter?.close()])
  logger.event('stopped', `node agent stopped on ${signal}`)
  return 0
}
