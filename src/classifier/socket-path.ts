// Where the classifier (or the CNI node agent) listens must be its own: a socket another user could replace, a path
// that is something else, or a socket another one still serves would each hand the node's cgroups (or pods' netns)
// to the wrong party.

import { lstat, mkdir, rm, stat } from 'node:fs/promises'
import net from 'node:net'
import { dirname } from 'node:path'
import { EnvironmentError } from '../errors.js'

const isServed = (path: string): Promise<boolean> =>
  new Promise(resolve => {
    const socket = net.connect(path)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })

/** prepareSocketPath makes `path` free to listen on, or throws EnvironmentError saying why it may not be used. */
export const prepareSocketPath = async (path: string, owner = 'classifier'): Promise<void> => {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const dirStat = await stat(dir)
  if (dirStat.uid !== 0 || (dirStat.mode & 0o022) !== 0) {
    throw new EnvironmentError(
      `the ${owner}'s socket directory ${JSON.stringify(dir)} is writable by others than root (owner UID ${dirStat.uid}, mode 0${(dirStat.mode & 0o777).toString(8)}): they could replace the socket`,
    )
  }
  const existing = await lstat(path).catch(() => undefined)
  if (existing === undefined) return
  if (!existing.isSocket()) {
    throw new EnvironmentError(
      `the ${owner}'s socket path ${JSON.stringify(path)} is ${existing.isDirectory() ? 'a directory' : 'not a socket'}; refusing to replace it`,
    )
  }
  // Connect before unlinking: a socket that answers belongs to a classifier still running.
  if (await isServed(path)) throw new EnvironmentError(`another ${owner} is already listening on ${JSON.stringify(path)}`)
  await rm(path, { force: true })
}
