// The agent's side: ask the node classifier to put this process into the net_cls group for `classid`. The answer
// is checked against /proc/self/cgroup, so a classifier that says yes without doing it is caught. One deadline
// bounds the whole request, retries included: a full listen queue and a "busy" answer are both asked again.

import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { isInGroupFor, netClsPath } from '../cgroup/net-cls.js'
import { ClassifierError } from '../errors.js'
import type { Reply } from './protocol.js'
import { messageOf } from '../text.js'

export const TIMEOUT_MS = 5000

// A unix socket whose listen queue is full refuses connect() with EAGAIN at once; the classifier drains it fast.
// And a classifier that answered "busy" on accepting, then closed before our request went out (it waits a grace
// period, but a loaded node may hold us up longer), makes the write fail with EPIPE or ECONNRESET and takes its
// answer with it. Each is asked again (so is a close with no answer at all): a request is idempotent.
const RETRY_MS = 20
const TRANSIENT = new Set(['EAGAIN', 'EPIPE', 'ECONNRESET'])
// After "busy", the wait before asking again doubles from this up to BUSY_MAX_MS, with jitter, so agents that
// were turned away together do not come back together.
const BUSY_FIRST_MS = 25
const BUSY_MAX_MS = 400
// Room left for one exchange with the classifier, which answers a served request at once.
const LAST_TRY_MS = 50

const ask = (socketPath: string, classid: number, deadline: number): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    let text = ''
    let settled = false
    const settle = (fn: () => void): void => {
      if (settled) return
      settled = true
      fn()
    }
    const waitMs = Math.max(1, deadline - Date.now())
    socket.setTimeout(waitMs, () => socket.destroy(new Error(`no answer within ${waitMs} ms`)))
    socket.on('connect', () => socket.write(`${JSON.stringify({ classid })}\n`))
    socket.on('data', chunk => (text += String(chunk)))
    const again = (): void => void setTimeout(() => ask(socketPath, classid, deadline).then(resolve, reject), RETRY_MS)
    socket.on('end', () =>
      settle(() => {
        // Closed with no answer at all: dropped like a reset, and asked again the same way.
        if (text === '' && Date.now() + RETRY_MS <= deadline) return again()
        try {
          resolve(JSON.parse(text) as Reply)
        } catch {
          reject(new Error(`an answer that is not JSON: ${JSON.stringify(text.slice(0, 200))}`))
        }
      }),
    )
    socket.on('error', (error: NodeJS.ErrnoException) =>
      settle(() => {
        if (!TRANSIENT.has(error.code ?? '') || Date.now() + RETRY_MS > deadline) return reject(error)
        again()
      }),
    )
  })

/** Asks until the answer is not "busy" or the deadline leaves no room for another try. */
const askUntilServed = async (socketPath: string, classid: number, deadline: number): Promise<Reply> => {
  for (let wait = BUSY_FIRST_MS; ; wait = Math.min(wait * 2, BUSY_MAX_MS)) {
    const reply = await ask(socketPath, classid, deadline)
    // The last wait is cut short, so the last try comes just before the deadline rather than not at all.
    const left = deadline - Date.now() - LAST_TRY_MS
    if (reply.ok || reply.busy !== true || left <= 0) return reply
    await sleep(Math.min(wait / 2 + Math.random() * (wait / 2), left))
  }
}

/**
 * requestClassification returns once this process is in the group (looked up under `netClsRoot` first, where it
 * is mounted); throws ClassifierError otherwise, at the latest when `timeoutMs` is up.
 */
export const requestClassification = async (socketPath: string, classid: number, netClsRoot?: string, timeoutMs = TIMEOUT_MS): Promise<string> => {
  let reply: Reply
  try {
    reply = await askUntilServed(socketPath, classid, Date.now() + timeoutMs)
  } catch (error) {
    throw new ClassifierError(`the net_cls classifier at ${socketPath} is unreachable: ${messageOf(error)}`, { cause: error })
  }
  if (!reply.ok) throw new ClassifierError(`the net_cls classifier refused: ${reply.error}${reply.busy ? ` (still busy after ${timeoutMs} ms)` : ''}`)
  if (!(await isInGroupFor('self', classid, netClsRoot))) {
    throw new ClassifierError(`the classifier said yes, but this process is in net_cls group ${(await netClsPath('self')) ?? '(none)'}`)
  }
  return reply.group
}
