// The node-level classifier: puts a requesting proxy agent (and so every process it starts) into the net_cls
// group it asks for, so the proxy container needs no root, no capability and no cgroupfs. Who asks is taken from
// SO_PEERCRED, as the kernel attests it; only that process is moved, never a PID named in a message.

import { chmod, mkdir, readFile, rm } from 'node:fs/promises'
import net from 'node:net'
import { dirname } from 'node:path'
import { ensureNetClsGroup, joinGroup } from '../cgroup/net-cls.js'
import type { Logger } from '../log.js'
import { peerCredentials, type PeerCredentials } from '../net/peercred.js'
import { parseStatus } from '../privilege/status.js'
import { decide, MAX_REQUEST_BYTES, parseRequest, type Policy, type Reply } from './protocol.js'

const REQUEST_TIMEOUT_MS = 5000

export interface ClassifierOptions {
  readonly socket: string
  readonly hierarchy: string
  readonly policy: Policy
  readonly logger: Logger
}

/** The PID could have been reused since the peer connected: only move it if it still runs as that UID. */
const stillThePeer = async (peer: PeerCredentials): Promise<boolean> => {
  const status = await readFile(`/proc/${peer.pid}/status`, 'utf8').catch(() => undefined)
  return status !== undefined && parseStatus(status).uids[0] === peer.uid
}

const serve = (options: ClassifierOptions, socket: net.Socket): void => {
  let peer: PeerCredentials | undefined
  let buffered = ''
  let answered = false
  const answer = (reply: Reply): void => {
    if (answered) return
    answered = true
    socket.end(`${JSON.stringify(reply)}\n`)
  }
  const log = (outcome: string, classid: number | undefined, reason?: string): void =>
    options.logger.event('classify', `pid ${peer?.pid ?? '?'} uid ${peer?.uid ?? '?'} classid ${classid === undefined ? '-' : `0x${classid.toString(16)}`}: ${outcome}${reason ? `: ${reason}` : ''}`, {
      pid: peer?.pid ?? null,
      uid: peer?.uid ?? null,
      classid: classid ?? null,
      outcome,
      ...(reason && { reason }),
    })
  const refuse = (reason: string, classid?: number): void => {
    if (answered) return
    log('refused', classid, reason)
    answer({ ok: false, error: reason })
  }
  const handle = async (line: string): Promise<void> => {
    const request = parseRequest(line)
    if ('error' in request) return refuse(request.error)
    const denied = peer ? decide(options.policy, peer.uid, request.classid) : 'the peer could not be identified'
    if (denied) return refuse(denied, request.classid)
    if (!(await stillThePeer(peer!))) return refuse('the requesting process is gone', request.classid)
    try {
      const group = await ensureNetClsGroup(options.hierarchy, request.classid)
      await joinGroup(group, peer!.pid)
      log('moved', request.classid)
      answer({ ok: true, classid: request.classid, group: group.slice(options.hierarchy.length) })
    } catch (error) {
      refuse(`could not move the process: ${(error as Error).message}`, request.classid)
    }
  }
  try {
    peer = peerCredentials(socket)
  } catch (error) {
    return refuse((error as Error).message)
  }
  socket.setTimeout(REQUEST_TIMEOUT_MS, () => refuse(`no complete request within ${REQUEST_TIMEOUT_MS} ms`))
  socket.on('error', () => undefined)
  socket.on('data', chunk => {
    if (answered) return
    buffered += String(chunk)
    const end = buffered.indexOf('\n')
    if (end >= 0 && end <= MAX_REQUEST_BYTES) void handle(buffered.slice(0, end))
    else if (buffered.length > MAX_REQUEST_BYTES) refuse(`the request is longer than ${MAX_REQUEST_BYTES} bytes`)
  })
  socket.on('end', () => refuse('the request ended before its newline'))
}

/**
 * startClassifier listens on the socket until the returned close() is called. The socket is 0666 in a root-owned
 * 0755 directory: any process that has the socket mounted may ask, the policy decides, and nobody else can
 * replace the socket.
 */
export const startClassifier = async (options: ClassifierOptions): Promise<{ close(): Promise<void> }> => {
  await mkdir(dirname(options.socket), { recursive: true, mode: 0o755 })
  await rm(options.socket, { force: true })
  const server = net.createServer({ allowHalfOpen: true }, socket => serve(options, socket))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.socket, resolve)
  })
  await chmod(options.socket, 0o666)
  return { close: () => new Promise(resolve => server.close(() => resolve())) }
}
