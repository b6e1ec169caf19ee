// Real connections between a pod on a CRI node and a server in the node's namespace, in both families, and what
// the pod's stand-in proxy logged about them: the same proof for every pod the CRI tests run.
import type { Test } from 'tap'
import type { Started } from '../../../src/exec/processes.js'
import { type ProcessStatus, readStatus } from '../../../src/privilege/status.js'
import { programs } from '../kernel.js'
import type { Node } from './containerd.js'
import type { Pod } from './pod.js'

export const REMOTE_PORT = 9090
export const APP_PORT = 8080
const NODE_BIN = '/usr/local/bin/node'
const PEER = '/app/dist/peer.mjs'

/** Starts the node's server: it answers every connection on [::]:9090 with a JSON line labelled "remote". */
export const startRemote = async (t: Test, node: Node): Promise<Started> => {
  const remote = node.spawn(process.execPath, [programs().peer, 'serve', `remote=[::]:${REMOTE_PORT}`])
  t.teardown(() => remote.stop())
  await remote.waitForLine(line => line.includes('"ready":true'), 10_000)
  return remote
}

/** The label of whoever answered a connection the pod's container `from` made to host:port. */
export const connectFrom = async (pod: Pod, from: string, host: string, port: number): Promise<string | undefined> => {
  const result = await pod.exec(from, [NODE_BIN, PEER, 'connect', host, String(port)])
  return (JSON.parse(result.stdout || '{}') as { reply?: { label?: string } }).reply?.label
}

/** The label of whoever answered a connection from the node to host:port. */
export const connectFromNode = async (node: Node, host: string, port: number): Promise<string | undefined> => {
  const result = await node.run(process.execPath, [programs().peer, 'connect', host, String(port)])
  return (JSON.parse(result.output.split('\n').find(line => line.startsWith('{')) ?? '{}') as { reply?: { label?: string } }).reply?.label
}

/** The proxy's relay lines, as the stand-in proxy logs them. */
export const relaysOf = (pod: Pod, proxy = 'proxy'): string[] => pod.logs(proxy).filter(line => line.includes('"relayed"'))

/** The relay line for one connection from `from` to `to` (address:port, no brackets, as SO_ORIGINAL_DST reads). */
export const relay = (from: string, to: string): string => `{"relayed":{"from":"${from}","to":"${to}"}}`

/**
 * Connects out from the app to the node's server and in from the node to the app, over IPv4 and IPv6, expecting
 * each answered by its real destination; returns the relay lines the proxy must have logged for them, in order.
 */
export const exchange = async (t: Test, node: Node, pod: Pod, app = 'app'): Promise<string[]> => {
  await pod.waitForLog(app, '"ready":true')
  const expected: string[] = []
  const families = [
    ['ipv4', pod.ips.find(ip => !ip.includes(':')), node.gateways.ipv4],
    ['ipv6', pod.ips.find(ip => ip.includes(':')), node.gateways.ipv6],
  ] as const
  for (const [family, address, gateway] of families) {
    if (!address) {
      t.fail(`${family}: the pod has no address`)
      continue
    }
    t.equal(await connectFrom(pod, app, gateway, REMOTE_PORT), 'remote', `${family}: app -> the node's server, answered by the server`)
    t.equal(await connectFromNode(node, address, APP_PORT), 'app', `${family}: node -> the pod's port ${APP_PORT}, answered by the app`)
    expected.push(relay(address, `${gateway}:${REMOTE_PORT}`), relay(gateway, `${address}:${APP_PORT}`))
  }
  return expected
}

/** Every capability set and the UIDs of a process, in the order the tests compare them. */
export const privilegesOf = (status: ProcessStatus): unknown[] => [
  status.uids,
  status.capEff,
  status.capPrm,
  status.capInh,
  status.capAmb,
  status.capBnd,
  status.noNewPrivs,
]

/** The proxy container's agent (its first process) and the proxy it started, read from the host now. */
export const agentAndProxy = (pod: Pod, container = 'proxy'): { agent: ProcessStatus; proxy: ProcessStatus } => {
  const agent = pod.processOf(container)
  const child = agent.children[0]
  if (child === undefined) throw new Error(`${container}: the agent has started no proxy`)
  return { agent: agent.status, proxy: readStatus(child) }
}
