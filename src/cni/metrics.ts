// The node agent's Prometheus metrics, kept with prom-client (the Node.js client Prometheus lists) in a registry of
// this agent's own, and served over plain HTTP at the operator's ISTIO_NODE_AGENT_METRICS. Labels are commands,
// results and CNI codes only: never a pod's name or netns, so a node's series stay few however many pods it runs.

import http from 'node:http'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { MetricsAddress } from '../settings/types.js'

const PREFIX = 'sidecar_redirect_node_agent_'

/** What a recheck of one captured pod found. */
export type RecheckResult = 'ok' | 'drift' | 'unverified'

export interface AgentMetrics {
  /** One answered CNI request: its command, its CNI code (0 for success) and how long it took. */
  request(command: string, code: number, seconds: number): void
  recheck(result: RecheckResult): void
  repair(result: 'repaired' | 'failed'): void
  /** The exposition text and its content type. */
  render(): Promise<{ readonly text: string; readonly contentType: string }>
}

export interface Gauges {
  captured(): number
  running(): number
  waiting(): number
}

const COMMANDS = new Set(['ADD', 'CHECK', 'DEL', 'VERSION', 'STATUS', 'GC'])

/** createMetrics registers the agent's metrics, and Node's process metrics (memory, CPU), in a new registry. */
export const createMetrics = (gauges: Gauges): AgentMetrics => {
  const register = new Registry()
  const registers = [register]
  collectDefaultMetrics({ register })
  const requests = new Counter({
    name: `${PREFIX}requests_total`,
    help: 'CNI requests answered, by command, result (ok or error) and CNI code (0 when ok; 11 when it waited past its deadline)',
    labelNames: ['command', 'result', 'code'],
    registers,
  })
  const duration = new Histogram({
    name: `${PREFIX}request_duration_seconds`,
    help: 'Time from a CNI request arriving to its answer, waiting for a slot included, by command',
    labelNames: ['command'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  })
  const rechecks = new Counter({
    name: `${PREFIX}rechecks_total`,
    help: 'Re-verifications of captured pods, by result: ok, drift (rules not as planned), unverified (verify could not run)',
    labelNames: ['result'],
    registers,
  })
  const drift = new Counter({ name: `${PREFIX}drift_found_total`, help: 'Captured pods found with rules not as planned', registers })
  const repairs = new Counter({
    name: `${PREFIX}repairs_total`,
    help: 'Re-applications after drift, by result (repaired or failed)',
    labelNames: ['result'],
    registers,
  })
  new Gauge({ name: `${PREFIX}captured_pods`, help: 'Pods the agent keeps captured', registers, collect: onCollect(gauges.captured) })
  new Gauge({ name: `${PREFIX}requests_in_flight`, help: 'Requests and repairs being worked on', registers, collect: onCollect(gauges.running) })
  new Gauge({ name: `${PREFIX}requests_queued`, help: 'Requests and repairs waiting for a slot', registers, collect: onCollect(gauges.waiting) })
  return {
    request: (command, code, seconds) => {
      const name = COMMANDS.has(command) ? command : 'other'
      requests.inc({ command: name, result: code === 0 ? 'ok' : 'error', code: String(code) })
      duration.observe({ command: name }, seconds)
    },
    recheck: result => {
      rechecks.inc({ result })
      if (result === 'drift') drift.inc()
    },
    repair: result => repairs.inc({ result }),
    render: async () => ({ text: await register.metrics(), contentType: register.contentType }),
  }
}

function onCollect(read: () => number) {
  return function (this: Gauge) {
    this.set(read())
  }
}

/** serveMetrics answers GET `address.path` with the exposition; anything else is 404. Resolves once listening. */
export const serveMetrics = async (address: MetricsAddress, metrics: AgentMetrics): Promise<{ readonly port: number; close(): Promise<void> }> => {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== address.path) {
      response.writeHead(404).end()
      return
    }
    metrics.render().then(
      ({ text, contentType }) => response.writeHead(200, { 'content-type': contentType }).end(text),
      () => response.writeHead(500).end(),
    )
  })
  // A scraper that stops reading must not hold a connection forever.
  server.requestTimeout = 10_000
  server.headersTimeout = 10_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: address.port, ...(address.host !== '' && { host: address.host }) }, resolve)
  })
  const bound = server.address()
  return {
    port: typeof bound === 'object' && bound ? bound.port : address.port,
    close: () => new Promise(resolve => server.close(() => resolve())),
  }
}
