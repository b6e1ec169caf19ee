// The node-level classifier: puts a requesting proxy agent (and so every process it starts) into the net_cls
// group it asks for, so the proxy container needs no root, no capability and no cgroupfs. Who asks is taken from
// the kernel (SO_PEERCRED, and a pidfd so a reused PID is never mistaken for the asker); only that process is
// moved, never a PID named in a message, and only once its whole request is read and allowed.

import { readFileSync } from 'node:fs'
import { chmod } from 'node:fs/promises'
import net from 'node:net'
import { enterNetClsGroup, groupName, joinGroup, netClsPath } from '../cgroup/net-cls.js'
import type { Logger } from '../log.js'
import { peerCredentials, type PeerCredentials } from '../net/peercred.js'
import { peerPidfd, type Pidfd } from '../net/pidfd.js'
import { decide, MAX_REQUEST_BYTES, parseRequest, peerGroup, refuseUid, type Policy, type Reply } from './protocol.js'
import { requireNofile } from '../privilege/rlimit.js'
import { prepareSocketPath } from './socket-path.js'
import { hex, messageOf } from '../text.js'

// A request is one short line: a client that has not sent it within this long from connecting is cut off.
export const REQUEST_DEADLINE_MS = 2000
// Connections from allowed UIDs being served at once; more are refused. Refused UIDs never hold one.
export const MAX_CONNECTIONS = 64
// ...and at most this many of them from one peer: one pod (its cgroup), or one process where cgroups tell peers
// apart by nothing. Not per UID: every proxy on the node is 1337, so one pod could otherwise hold every slot. An
// agent asks once per start; a peer at its limit is told it is busy, and the agent asks again.
export const MAX_PER_PEER = 4
// The kernel queues at most this many connections not yet accepted, so at most this many are open before the
// refusal of each can close it: with the cap above, this bounds the descriptors the classifier needs.
export const BACKLOG = 128
// Closing a unix socket with unread input resets it, and the peer may then lose the answer: so after answering,
// what the peer still sends is read and dropped until it closes, for at most this long, and by at most
// MAX_CLOSING connections at once (beyond that, a flood, they are closed at once).
const CLOSE_GRACE_MS = 1000
const MAX_CLOSING = 256

export interface ClassifierOptions {
  readonly socket: string
  readonly hierarchy: string
  readonly policy: Policy
  readonly logger: Logger
}

interface Asker extends PeerCredentials {
  readonly pidfd: Pidfd
}

const hexOrDash = (n: number | undefined): string => (n === undefined ? '-' : hex(n))

// The peer a connection is counted against (see MAX_PER_PEER). Read when it connects; a peer gone by then is its PID.
const peerKey = (pid: number): string => {
  let text = ''
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
  } catch {
    // exited already: the PID is all there is
  }
  const group = peerGroup(text)
  return group === undefined ? `pid ${pid}` : `cgroup ${group}`
}

const createHandler = (options: ClassifierOptions) => {
  let serving = 0
  const perPeer = new Map<string, number>()
  let closing = 0
  return (socket: net.Socket): void => {
    let peer: PeerCredentials | undefined
    let asker: Asker | undefined
    let state: 'reading' | 'deciding' | 'done' = 'reading'
    let buffered = ''
    let counted = false
    // Exactly one log line and one reply per connection, whatever else happens on it.
    const finish = (reply: Reply, outcome: string, classid: number | undefined, reason?: string): void => {
      if (state === 'done') return
      state = 'done'
      options.logger.event(
        'classify',
        `pid ${peer?.pid ?? '?'} uid ${peer?.uid ?? '?'} classid ${hexOrDash(classid)}: ${outcome}${reason ? `: ${reason}` : ''}`,
        {
          pid: peer?.pid ?? null,
          uid: peer?.uid ?? null,
          classid: classid ?? null,
          outcome,
          ...(reason && { reason }),
        },
      )
      socket.end(`${JSON.stringify(reply)}\n`)
      if (closing >= MAX_CLOSING) return void socket.destroy()
      closing += 1
      const grace = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS)
      socket.once('close', () => {
        clearTimeout(grace)
        closing -= 1
      })
      socket.once('end', () => socket.destroy())
      socket.resume()
    }
    const refuse = (reason: string, classid?: number): void => finish({ ok: false, error: reason }, 'refused', classid, reason)
    const busy = (reason: string): void => finish({ ok: false, error: reason, busy: true }, 'busy', undefined, reason)

    const move = async (line: string): Promise<void> => {
      state = 'deciding'
      const request = parseRequest(line)
      if ('error' in request) return refuse(request.error)
      const { classid } = request
      const denied = decide(options.policy, asker!.uid, classid)
      if (denied) return refuse(denied, classid)
      if (!asker!.pidfd.alive()) return refuse('the asker has exited (its PID may already be another process)', classid)
      try {
        const before = await netClsPath(asker!.pid)
        const group = await enterNetClsGroup(options.hierarchy, classid, asker!.pid)
        // Alive after the write too: then the PID written was the asker's all along. If it exited meanwhile, the
        // PID may have been reused, so whatever now has it goes back where the asker was.
        if (!asker!.pidfd.alive()) {
          if (before !== undefined) await joinGroup(`${options.hierarchy}${before === '/' ? '' : before}`, asker!.pid).catch(() => undefined)
          return refuse('the asker exited during the move; the PID was moved back', classid)
        }
        // Yes only on the kernel's word: the asker's own /proc entry names the group.
        const now = await netClsPath(asker!.pid)
        if (!now?.endsWith(`/${groupName(classid)}`))
          return refuse(`the move did not take: the kernel shows the asker in net_cls group ${now ?? '(none)'}`, classid)
        finish({ ok: true, classid, group: group.slice(options.hierarchy.length) }, 'moved', classid)
      } catch (error) {
        refuse(`could not move the process: ${messageOf(error)}`, classid)
      }
    }

    socket.on('error', () => undefined)
    let key = ''
    socket.on('close', () => {
      clearTimeout(deadline)
      asker?.pidfd.close()
      if (!counted) return
      serving -= 1
      const left = (perPeer.get(key) ?? 1) - 1
      if (left === 0) perPeer.delete(key)
      else perPeer.set(key, left)
    })
    const deadline = setTimeout(
      () => state === 'reading' && refuse(`no complete request within ${REQUEST_DEADLINE_MS} ms of connecting`),
      REQUEST_DEADLINE_MS,
    )
    try {
      peer = peerCredentials(socket)
    } catch (error) {
      refuse(messageOf(error))
      return
    }
    const uidRefused = refuseUid(options.policy, peer.uid)
    if (uidRefused) {
      refuse(uidRefused)
      return
    }
    if (serving >= MAX_CONNECTIONS) {
      busy(`busy: ${MAX_CONNECTIONS} requests are being served; try again`)
      return
    }
    key = peerKey(peer.pid)
    const own = perPeer.get(key) ?? 0
    if (own >= MAX_PER_PEER) {
      busy(`busy: ${MAX_PER_PEER} requests of this peer (${key}) are being served; try again`)
      return
    }
    serving += 1
    perPeer.set(key, own + 1)
    counted = true
    try {
      asker = { ...peer, pidfd: peerPidfd(socket, peer.pid) }
    } catch (error) {
      refuse(messageOf(error))
      return
    }
    socket.on('data', chunk => {
      if (state !== 'reading') return
      buffered += String(chunk)
      const end = buffered.indexOf('\n')
      if (end >= 0 && end <= MAX_REQUEST_BYTES) void move(buffered.slice(0, end))
      else if (buffered.length > MAX_REQUEST_BYTES) refuse(`the request is longer than ${MAX_REQUEST_BYTES} bytes`)
    })
    // A half-close after a whole request is fine (the answer still goes out); before one, there is no request.
    socket.on('end', () => state === 'reading' && refuse('the request ended before its newline'))
  }
}

/**
 * startClassifier listens on the socket until the returned close() is called. The socket is 0666 in a root-owned
 * directory nobody else may write: any process that has the socket mounted may ask, the policy decides, and
 * nobody else can replace the socket. Throws EnvironmentError when the path cannot be used safely.
 */
export const startClassifier = async (options: ClassifierOptions): Promise<{ close(): Promise<void> }> => {
  const server = net.createServer({ allowHalfOpen: true }, createHandler(options))
  // Every queued connection and every one being served holds a descriptor, plus a few of our own.
  requireNofile(BACKLOG + MAX_CONNECTIONS + 64, 'the classifier')
  await prepareSocketPath(options.socket)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ path: options.socket, backlog: BACKLOG }, resolve)
  })
  await chmod(options.socket, 0o666)
  return { close: () => new Promise(resolve => server.close(() => resolve())) }
}
