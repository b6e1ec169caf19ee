// The node agent's listener: one forwarded CNI request per connection, answered in the wire format of wire.ts.
// Only root may connect (socket 0660, root's group, in a root-owned 0755 directory): the runtime runs the plugin
// as root, and a request makes the agent write rules into whatever netns it names. Every connection has a deadline:
// one that has not delivered its request by then is closed, and one still waiting for a slot is answered code 11
// (try again later); once worked on, each tool run is bounded by ISTIO_EXEC_TIMEOUT.

import { chmod } from 'node:fs/promises'
import net from 'node:net'
import { prepareSocketPath } from '../classifier/socket-path.js'
import type { Logger } from '../log.js'
import { messageOf } from '../text.js'
import { handleRequest, type AgentIo } from './handle.js'
import { QueueTimeout, type Limit, type Serial } from './limit.js'
import type { AgentMetrics } from './metrics.js'
import { CNI_CODES, CniError, errorReply, PLUGIN_CODE_BASE, type Reply } from './result.js'
import { decodeRequest, encodeReply, type Request } from './wire.js'

// A conflist with its prevResult is a few KiB; anything far larger is not a CNI request.
const MAX_REQUEST_BYTES = 1 << 20

// The commands that work in a netns share the limit (with the keeper's repairs); the others are answered at once.
const IN_NETNS = new Set(['ADD', 'CHECK', 'DEL'])

export interface AgentDeps {
  readonly io: AgentIo
  readonly logger: Logger
  readonly limit: Limit
  readonly serial: Serial
  readonly metrics: Pick<AgentMetrics, 'request'>
  /** From accepting a connection: how long it has to deliver its request and get a slot. */
  readonly deadlineMs: number
}

const codeOf = (reply: Reply): number => {
  if (reply.exitCode === 0) return 0
  try {
    const code = (JSON.parse(reply.stdout) as { code?: unknown }).code
    return typeof code === 'number' ? code : -1
  } catch {
    return -1
  }
}

const work = (request: Request, deps: AgentDeps, deadline: number): Promise<Reply> => {
  const command = request.env['CNI_COMMAND'] ?? ''
  if (!IN_NETNS.has(command)) return handleRequest(request, deps.io)
  const inSlot = (): Promise<Reply> => deps.limit.run(() => handleRequest(request, deps.io), Math.max(0, deadline - performance.now()))
  // One request at a time per netns, so a DEL and a repair of the same pod never overlap.
  const netns = request.env['CNI_NETNS'] ?? ''
  return netns === '' ? inSlot() : deps.serial.run(netns, inSlot)
}

const answer = async (data: Buffer, deps: AgentDeps, accepted: number): Promise<Buffer> => {
  const request = decodeRequest(data)
  if (request === undefined)
    return encodeReply(errorReply('1.1.0', new CniError(CNI_CODES.decoding, "the forwarded request is not in the agent's format"), ''))
  const command = request.env['CNI_COMMAND'] ?? '?'
  const reply = await work(request, deps, accepted + deps.deadlineMs).catch((error: unknown) =>
    error instanceof QueueTimeout
      ? errorReply('1.1.0', new CniError(CNI_CODES.tryAgainLater, `${error.message}; try again later`), '')
      : errorReply(
          '1.1.0',
          new CniError(
            PLUGIN_CODE_BASE + 1,
            'the node agent failed unexpectedly (a bug; please report it): its log has the error',
            '',
            messageOf(error),
          ),
          '',
        ),
  )
  deps.metrics.request(command, codeOf(reply), (performance.now() - accepted) / 1000)
  deps.logger.event(
    'cni',
    `${command} ${request.env['CNI_CONTAINERID'] ?? '-'} ${request.env['CNI_NETNS'] ?? '-'}: exit ${reply.exitCode}${reply.stderr ? `: ${reply.stderr.trim()}` : ''}${reply.log ? `\n${reply.log.trim()}` : ''}`,
    {
      command,
      container: request.env['CNI_CONTAINERID'] ?? null,
      netns: request.env['CNI_NETNS'] ?? null,
      exitCode: reply.exitCode,
    },
  )
  return encodeReply(reply)
}

/** startNodeAgent listens on `socket` until close(); throws EnvironmentError when the path cannot be used safely. */
export const startNodeAgent = async (socket: string, deps: AgentDeps): Promise<{ close(): Promise<void> }> => {
  const server = net.createServer({ allowHalfOpen: true }, connection => {
    const accepted = performance.now()
    const chunks: Buffer[] = []
    let size = 0
    // A client that never finishes its request (or never sends one) is not kept.
    const silent = setTimeout(() => connection.destroy(), deps.deadlineMs)
    connection.on('error', () => undefined)
    connection.on('close', () => clearTimeout(silent))
    connection.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_REQUEST_BYTES) connection.destroy()
      else chunks.push(chunk)
    })
    connection.on('end', () => {
      clearTimeout(silent)
      void answer(Buffer.concat(chunks), deps, accepted).then(reply => connection.end(reply))
    })
  })
  await prepareSocketPath(socket, 'node agent')
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socket, resolve)
  })
  await chmod(socket, 0o660)
  return { close: () => new Promise(resolve => server.close(() => resolve())) }
}
