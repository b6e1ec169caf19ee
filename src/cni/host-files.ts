// The installer's reach into the host's CNI directories, where other parties write too (the primary CNI, other
// vendors' DaemonSets, anyone who can write /etc/cni/net.d). So: reads are bounded and never block on what is not
// a regular file; every write goes to a temp file created exclusively under an unpredictable name (never through a
// link) and is then swapped in as a compare-and-swap: the target is read again just before, and the swap itself is
// renameat2's RENAME_EXCHANGE, after which what was displaced is checked, and put back if a newer write came in
// between. A removal moves the file aside first and checks it the same way.

import { createHash, randomBytes } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { lchown, link, lstat, open, readlink, rename, symlink, unlink } from 'node:fs/promises'
import { constants as osConstants } from 'node:os'
import { dirname, join } from 'node:path'
import { loadLibc } from '../net/libc.js'

/** Our temp files' names start so: no CNI extension, so the runtime never reads one. */
export const TEMP_PREFIX = '.sidecar-redirect.tmp-'

/** What a path holds, without following a link; a link's target is read too, as the runtime would. */
export type Entry =
  | { readonly kind: 'absent' }
  | (Identity & { readonly kind: 'file'; readonly mode: number; readonly uid: number; readonly gid: number; readonly bytes: Buffer })
  | (Identity & { readonly kind: 'symlink'; readonly target: string; readonly uid: number; readonly gid: number; readonly followed: Entry })
  | (Identity & { readonly kind: 'large'; readonly size: number })
  | (Identity & { readonly kind: 'other'; readonly what: string })

interface Identity {
  readonly ino: number
  readonly dev: number
}

/** What to put at a path: a regular file's bytes, mode and owner, or a symbolic link. */
export type Content =
  | { readonly bytes: Buffer; readonly mode: number; readonly uid?: number; readonly gid?: number }
  | { readonly symlink: string; readonly uid?: number; readonly gid?: number }

export type Swap = 'done' | 'changed'

export const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex')

const code = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

const kindOf = (s: Stats): string =>
  s.isDirectory()
    ? 'a directory'
    : s.isFIFO()
      ? 'a FIFO'
      : s.isSocket()
        ? 'a socket'
        : s.isCharacterDevice() || s.isBlockDevice()
          ? 'a device'
          : 'not a regular file'

// Opened non-blocking, so a FIFO planted under a config name cannot hang the check; then only a regular file is read.
const readFollowing = async (path: string, maxBytes: number, flags: number): Promise<Entry> => {
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | flags)
  } catch (error) {
    if (code(error) === 'ENOENT') return { kind: 'absent' }
    // A link in a loop, a target it may not read...: what the runtime cannot read either.
    return { kind: 'other', ino: 0, dev: 0, what: `not readable (${code(error) ?? 'error'})` }
  }
  try {
    const s = await handle.stat()
    const id = { ino: s.ino, dev: s.dev }
    if (!s.isFile()) return { ...id, kind: 'other', what: kindOf(s) }
    if (s.size > maxBytes) return { ...id, kind: 'large', size: s.size }
    const chunks: Buffer[] = []
    let total = 0
    for (;;) {
      const chunk = Buffer.alloc(Math.min(maxBytes + 1 - total, 1 << 16) || 1)
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null)
      if (bytesRead === 0) break
      total += bytesRead
      if (total > maxBytes) return { ...id, kind: 'large', size: total }
      chunks.push(chunk.subarray(0, bytesRead))
    }
    return { ...id, kind: 'file', mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, bytes: Buffer.concat(chunks) }
  } finally {
    await handle.close()
  }
}

/** readEntry says what `path` holds, reading at most `maxBytes` of a file (or of a link's target). */
export const readEntry = async (path: string, maxBytes: number): Promise<Entry> => {
  let s: Stats
  try {
    s = await lstat(path)
  } catch (error) {
    if (code(error) === 'ENOENT') return { kind: 'absent' }
    throw error
  }
  const id = { ino: s.ino, dev: s.dev }
  if (s.isSymbolicLink()) {
    const target = await readlink(path).catch(() => undefined)
    if (target === undefined) return { kind: 'absent' }
    return { ...id, kind: 'symlink', target, uid: s.uid, gid: s.gid, followed: await readFollowing(path, maxBytes, 0) }
  }
  if (!s.isFile()) return { ...id, kind: 'other', what: kindOf(s) }
  const read = await readFollowing(path, maxBytes, constants.O_NOFOLLOW)
  // Replaced between the lstat and the open: report what the open found.
  return read
}

/** sameEntry says whether two reads found the same thing: the same inode with the same bytes (or link). Pure. */
export const sameEntry = (a: Entry, b: Entry): boolean => {
  if (a.kind === 'absent' || b.kind === 'absent') return a.kind === b.kind
  if (a.kind !== b.kind || a.ino !== b.ino || a.dev !== b.dev) return false
  if (a.kind === 'file' && b.kind === 'file') return a.bytes.equals(b.bytes)
  if (a.kind === 'symlink' && b.kind === 'symlink') return a.target === b.target && sameEntry(a.followed, b.followed)
  return true
}

const tempPath = (dir: string): string => join(dir, `${TEMP_PREFIX}${randomBytes(16).toString('hex')}`)

const writeTemp = async (path: string, content: Content): Promise<void> => {
  if ('symlink' in content) {
    await symlink(content.symlink, path)
    if (content.uid !== undefined && content.gid !== undefined) await lchown(path, content.uid, content.gid)
    return
  }
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  try {
    await handle.writeFile(content.bytes)
    if (content.uid !== undefined && content.gid !== undefined) await handle.chown(content.uid, content.gid)
    // After the chown, and exactly: not filtered by the umask.
    await handle.chmod(content.mode)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Makes `content` at a fresh temp name in `dir`: created exclusively, so never through anything planted there. */
const createTemp = async (dir: string, content: Content): Promise<{ path: string; ino: number }> => {
  for (let attempt = 1; ; attempt++) {
    const path = tempPath(dir)
    try {
      await writeTemp(path, content)
      return { path, ino: (await lstat(path)).ino }
    } catch (error) {
      // EEXIST: the name is someone else's, left alone; any other failure leaves a file of ours to remove.
      if (code(error) === 'EEXIST' && attempt < 5) continue
      if (code(error) !== 'EEXIST') await unlink(path).catch(() => undefined)
      throw error
    }
  }
}

const RENAME_NOREPLACE = 1
const RENAME_EXCHANGE = 2
const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]))

/** renameat2 as a Node-style error; 'unsupported' when the filesystem (or kernel) lacks the flag. */
const rename2 = (from: string, to: string, flags: number): 'ok' | 'exists' | 'unsupported' => {
  const libc = loadLibc()
  if (libc.renameat2(from, to, flags) === 0) return 'ok'
  const errno = libc.errno()
  const name = ERRNO_NAMES.get(errno) ?? `errno ${errno}`
  if (name === 'EEXIST') return 'exists'
  if (name === 'EINVAL' || name === 'ENOSYS') return 'unsupported'
  throw Object.assign(new Error(`${name}: renameat2 ${from} -> ${to}`), { code: name, errno })
}

// Without RENAME_NOREPLACE: link(2) fails on an existing name as atomically, and does not follow a link.
const placeNew = async (from: string, to: string): Promise<boolean> => {
  const result = rename2(from, to, RENAME_NOREPLACE)
  if (result !== 'unsupported') return result === 'ok'
  try {
    await link(from, to)
  } catch (error) {
    if (code(error) === 'EEXIST') return false
    throw error
  }
  await unlink(from)
  return true
}

const inoAt = async (path: string): Promise<number | undefined> => (await lstat(path).catch(() => undefined))?.ino

// Our file went in but displaced a newer write than the one we read: swap it back, unless the writer has already
// replaced ours, or does so in between (then the second swap puts the newest write back in place).
const undoSwap = async (path: string, temp: string, ours: number): Promise<void> => {
  if ((await inoAt(path)) === ours && rename2(temp, path, RENAME_EXCHANGE) === 'ok' && (await inoAt(temp)) !== ours) {
    rename2(temp, path, RENAME_EXCHANGE)
  }
  await unlink(temp).catch(() => undefined)
}

/**
 * replaceIfUnchanged puts `content` at `path` if what is there is still `expected` (a file, a link, or nothing);
 * 'changed' when another write came first, and then nothing of ours is left. Throws on I/O failure.
 */
export const replaceIfUnchanged = async (path: string, expected: Entry, content: Content, maxBytes: number): Promise<Swap> => {
  if (expected.kind !== 'absent' && expected.kind !== 'file' && expected.kind !== 'symlink') {
    throw new Error(`${path} is ${expected.kind === 'other' ? expected.what : 'too large to check'}: not replaced`)
  }
  const temp = await createTemp(dirname(path), content)
  try {
    if (!sameEntry(await readEntry(path, maxBytes), expected)) return 'changed'
    if (expected.kind === 'absent') return (await placeNew(temp.path, path)) ? 'done' : 'changed'
    const swapped = rename2(temp.path, path, RENAME_EXCHANGE)
    if (swapped === 'unsupported') {
      // The re-read just above is then the whole check.
      await rename(temp.path, path)
      return 'done'
    }
    if (sameEntry(await readEntry(temp.path, maxBytes), expected)) return 'done'
    await undoSwap(path, temp.path, temp.ino)
    return 'changed'
  } finally {
    await unlink(temp.path).catch(() => undefined)
  }
}

/** removeIfUnchanged removes `path` if it still holds `expected`; 'changed' (and it stays) otherwise. */
export const removeIfUnchanged = async (path: string, expected: Entry, maxBytes: number): Promise<Swap> => {
  const aside = tempPath(dirname(path))
  let moved: ReturnType<typeof rename2>
  try {
    moved = rename2(path, aside, RENAME_NOREPLACE)
    if (moved === 'unsupported') await rename(path, aside)
  } catch (error) {
    if (code(error) === 'ENOENT') return 'changed'
    throw error
  }
  if (moved === 'exists') return 'changed'
  if (sameEntry(await readEntry(aside, maxBytes), expected)) {
    await unlink(aside)
    return 'done'
  }
  // Not what we read: put it back, unless a newer one has taken its place meanwhile.
  if (!(await placeNew(aside, path))) await unlink(aside)
  return 'changed'
}

/** writeOwn replaces one of our own files (a temp file renamed over it): whatever is at the name is replaced, never written through. */
export const writeOwn = async (path: string, bytes: Buffer, mode: number): Promise<void> => {
  const temp = await createTemp(dirname(path), { bytes, mode })
  try {
    await rename(temp.path, path)
  } finally {
    await unlink(temp.path).catch(() => undefined)
  }
}
