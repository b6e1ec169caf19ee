// What the installer remembers between its runs, in `.sidecar-redirect.state` beside the config it chained: which
// file it wrote, a hash of what it wrote there, and what that file was before (its bytes, mode and owner, or the
// link it was), so uninstall can put it back exactly. The file lies in a directory others write, so what is read
// back is checked before anything is done with it: names that are bare config names of the conf dir only, bytes
// that match their hash, a mode without set-ID bits. Anything else is not our state: ignored, never followed.
// Pure.

import { extensionOf, isConfName, listName } from './conflist.js'
import { sha256 } from './host-files.js'

export const STATE_FILE = '.sidecar-redirect.state'
export const STATE_VERSION = 1

/** A regular file's bytes, mode and owner, or the symbolic link (and its owner) that stood at the name. */
export type Original =
  | { readonly name: string; readonly file: { readonly bytes: Buffer; readonly mode: number; readonly uid: number; readonly gid: number } }
  | { readonly name: string; readonly symlink: { readonly target: string; readonly uid: number; readonly gid: number } }

export interface State {
  /** The conflist we wrote our entry into (a bare name in the conf dir). */
  readonly file: string
  /** sha256 of the bytes we wrote there: equal means nobody rewrote the file since. */
  readonly written: string
  /** What stood at `original.name` (== file, or the .conf/.json we turned into `file`) before. */
  readonly original: Original
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** A name of the conf dir itself: no directory part, not . or .., no NUL. Pure. */
export const isBareName = (name: unknown): name is string =>
  typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && !/[/\0]/.test(name) && name.length <= 255

const isId = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) < 2 ** 32

const parseOriginal = (value: unknown, file: string): Original | string => {
  if (!isRecord(value)) return '"original" is not an object'
  const { name } = value
  if (!isBareName(name) || !isConfName(name)) return `"original.name" ${JSON.stringify(name)} is not a config file name of the conf dir`
  if (name !== file && !(extensionOf(name) !== '.conflist' && listName(name) === file)) {
    return `"original.name" ${JSON.stringify(name)} is neither "file" nor the single-plugin file it was made from`
  }
  if (isRecord(value['file']) === isRecord(value['symlink'])) return '"original" holds neither (or both) a "file" and a "symlink"'
  if (isRecord(value['symlink'])) {
    const { target, uid, gid } = value['symlink']
    if (typeof target !== 'string' || target === '' || target.includes('\0') || target.length > 4096)
      return '"original.symlink.target" is not a link target'
    if (!isId(uid) || !isId(gid)) return '"original.symlink" has no owner'
    return { name, symlink: { target, uid, gid } }
  }
  const { bytes, sha256: hash, mode, uid, gid } = value['file'] as Record<string, unknown>
  if (typeof bytes !== 'string' || Buffer.from(bytes, 'base64').toString('base64') !== bytes) return '"original.file.bytes" is not base64'
  const decoded = Buffer.from(bytes, 'base64')
  if (hash !== sha256(decoded)) return '"original.file.bytes" do not match their sha256'
  // No set-ID or sticky bits: no config file needs them, and a planted state must not make one.
  if (!Number.isInteger(mode) || (mode as number) < 0 || (mode as number) > 0o777) return '"original.file.mode" is not a permission mode'
  if (!isId(uid) || !isId(gid)) return '"original.file" has no owner'
  return { name, file: { bytes: decoded, mode: mode as number, uid, gid } }
}

/** parseState reads the state file's bytes; returns why they are not a state this installer writes, as a string. Pure. */
export const parseState = (bytes: Buffer): State | string => {
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    return 'not JSON'
  }
  if (!isRecord(value)) return 'not a JSON object'
  if (value['version'] !== STATE_VERSION) return `not version ${STATE_VERSION}`
  const { file, written } = value
  if (!isBareName(file) || extensionOf(file) !== '.conflist') return `"file" ${JSON.stringify(file)} is not a .conflist of the conf dir`
  if (typeof written !== 'string' || !/^[0-9a-f]{64}$/.test(written)) return '"written" is not a sha256'
  const original = parseOriginal(value['original'], file)
  return typeof original === 'string' ? original : { file, written, original }
}

/** renderState writes a state as parseState reads it. Pure. */
export const renderState = (state: State): Buffer => {
  const original =
    'file' in state.original
      ? {
          name: state.original.name,
          file: { ...state.original.file, bytes: state.original.file.bytes.toString('base64'), sha256: sha256(state.original.file.bytes) },
        }
      : state.original
  return Buffer.from(`${JSON.stringify({ version: STATE_VERSION, file: state.file, written: state.written, original })}\n`)
}
