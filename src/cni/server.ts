// The node agent's listener: one forwarded CNI request per connection, answered in the wire format of wire.ts.
// Only root may connect (socket 0660, root's group, in a root-owned 0755 directory): the runtime runs the plugin
// as root, and a request makes the agent write rules into whatever netns it names.

import { chmod } from 'node:fs/promises'
import net from 'node:net'
import { prepareSocketPath } from '../classifier/socket-path.js'
import type { Logger } from '../log.js'
import { messageOf } from '../text.js'
import { handleRequest, type AgentIo } from './handle.js'
import { CNI_CODES, CniError, errorReply, PLUGIN_CODE_BASE } from './result.js'
import { decodeRequest, encodeReply } from './wire.js'

// A conflist with its prevResult is a few KiB; anything far larger is not a CNI request.
const MAX_REQUEST_BYTES = 1 << 20

const answer = async (data: Buffer, io: AgentIo, logger: Logger): Promise<Buffer> => {
  const request = decodeRequest(data)
  if (request === undefined)
    return encodeReply(errorReply('1.1.0', new CniError(CNI_CODES.decoding, "the forwarded request is not in the agent's format"), ''))
  const reply = await handleRequest(request, io).catch((error: unknown) =>
    errorReply(
      '1.1.0',
      new CniError(PLUGIN_CODE_BASE + 1, 'the node agent failed unexpectedly (a bug; please report it): its log has the error', '', messageOf(error)),
      '',
    ),
  )
  const command = request.env['CNI_COMMAND'] ?? '?'
  logger.event(
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
export const startNodeAgent = async (socket: string, io: AgentIo, logger: Logger): Promise<{ close(): Promise<void> }> => {
  const server = net.createServer({ allowHalfOpen: true }, connection => {
    const chunks: Buffer[] = []
    let size = 0
    connection.on('error', () => undefined)
    connection.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_REQUEST_BYTES) connection.destroy()
      else chunks.push(chunk)
    })
    connection.on('end', () => {
      void answer(Buffer.concat(chunks), io, logger).then(reply => connection.end(reply))
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
