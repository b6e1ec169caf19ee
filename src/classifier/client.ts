// The agent's side: ask the node classifier to put this process into the net_cls group for `classid`. The answer
// is checked against /proc/self/cgroup, so a classifier that says yes without doing it is caught.

import net from 'node:net'
import { isInGroupFor, netClsPath } from '../cgroup/net-cls.js'
import { ClassifierError } from '../errors.js'
import type { Reply } from './protocol.js'
import { messageOf } from '../text.js'

const TIMEOUT_MS = 5000

// A unix socket whose listen queue is full refuses connect() with EAGAIN at once; the classifier drains it fast.
const RETRY_MS = 20

const ask = (socketPath: string, classid: number, deadline = Date.now() + TIMEOUT_MS): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    let text = ''
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)))
    socket.on('connect', () => socket.write(`${JSON.stringify({ classid })}\n`))
    socket.on('data', chunk => (text += String(chunk)))
    socket.on('end', () => {
      try {
        resolve(JSON.parse(text) as Reply)
      } catch {
        reject(new Error(`an answer that is not JSON: ${JSON.stringify(text.slice(0, 200))}`))
      }
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EAGAIN' || Date.now() > deadline) return reject(error)
      setTimeout(() => ask(socketPath, classid, deadline).then(resolve, reject), RETRY_MS)
    })
  })

/** requestClassification returns once this process is in the group; throws ClassifierError otherwise. */
export const requestClassification = async (socketPath: string, classid: number): Promise<string> => {
  let reply: Reply
  try {
    reply = await ask(socketPath, classid)
  } catch (error) {
    throw new ClassifierError(`the net_cls classifier at ${socketPath} is unreachable: ${messageOf(error)}`, { cause: error })
  }
  if (!reply.ok) throw new ClassifierError(`the net_cls classifier refused: ${reply.error}`)
  if (!(await isInGroupFor('self', classid))) {
    throw new ClassifierError(`the classifier said yes, but this process is in net_cls group ${(await netClsPath('self')) ?? '(none)'}`)
  }
  return reply.group
}
