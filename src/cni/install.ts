// The installer's I/O: the plugin into the host's CNI bin directory, our entry into the primary config file, and
// both out again. Every write is a temp file in the same directory renamed over the target, so the runtime never
// reads half a file. What the file held before we chained it is kept, byte for byte, in a state file beside it,
// `.sidecar-redirect.state` (no .conf/.conflist/.json suffix, so the runtime never reads it), which survives a
// restart of the installer: uninstall puts those bytes back when the file is still exactly what we wrote, and
// otherwise (the primary CNI rewrote it since) takes out only our entry. No other file of the directory is touched.

import { createHash } from 'node:crypto'
import { chmod, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { EnvironmentError } from '../errors.js'
import type { Logger } from '../log.js'
import { chain, choosePrimary, hasOurs, isConfName, PLUGIN_TYPE, refuseVersion, unchain, type ConfFile } from './conflist.js'
import { missingRight } from '../exec/refusal.js'

export const STATE_FILE = '.sidecar-redirect.state'

export interface InstallTarget {
  readonly confDir: string
  readonly binDir: string
  /** The plugin executable's bytes, as shipped. */
  readonly plugin: Buffer
  /** Our entry in the conflist. */
  readonly entry: Readonly<Record<string, unknown>>
}

interface State {
  /** The file we wrote our entry into. */
  readonly file: string
  /** What was there before: its name (a .conf we turned into a .conflist) and bytes, base64. */
  readonly original: { readonly name: string; readonly bytes: string }
  /** sha256 of the bytes we wrote: equal means nobody rewrote the file since. */
  readonly written: string
}

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex')

const failed = (what: string, path: string) => (error: NodeJS.ErrnoException) => {
  const missing = missingRight(error.code, 'the installer runs as root on the node, with the host directories mounted writable')
  throw new EnvironmentError(`cni-install: cannot ${what} ${path}: ${missing ?? error.code ?? error.message}`, { cause: error })
}

const readOrAbsent = (path: string): Promise<Buffer | undefined> =>
  readFile(path).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : failed('read', path)(error)))

/** Writes via a temp file in the same directory and a rename, keeping `mode`. */
const writeAtomic = async (path: string, bytes: Buffer | string, mode: number): Promise<void> => {
  const temp = join(dirname(path), `.sidecar-redirect.tmp-${process.pid}`)
  await writeFile(temp, bytes, { mode }).catch(failed('write', temp))
  // writeFile's mode is filtered by the umask: set it exactly.
  await chmod(temp, mode).catch(failed('chmod', temp))
  await rename(temp, path).catch(failed('rename into', path))
}

const modeOf = async (path: string, fallback: number): Promise<number> => {
  const info = await stat(path).catch(() => undefined)
  return info === undefined ? fallback : info.mode & 0o7777
}

const statePath = (target: InstallTarget): string => join(target.confDir, STATE_FILE)

const readState = async (target: InstallTarget): Promise<State | undefined> => {
  const bytes = await readOrAbsent(statePath(target))
  if (bytes === undefined) return undefined
  try {
    return JSON.parse(bytes.toString('utf8')) as State
  } catch {
    throw new EnvironmentError(`cni-install: ${statePath(target)} is not the state this installer writes (not JSON): move it away to start afresh`)
  }
}

const writeState = (target: InstallTarget, state: State): Promise<void> => writeAtomic(statePath(target), `${JSON.stringify(state)}\n`, 0o600)

const pluginPath = (target: InstallTarget): string => join(target.binDir, PLUGIN_TYPE)

/** The config files of the directory, as the runtime lists them (regular files, or links to them). */
const readConfFiles = async (dir: string): Promise<ConfFile[]> => {
  const names = (await readdir(dir).catch(failed('list', dir))).filter(isConfName)
  const files = await Promise.all(
    names.map(async name => {
      const info = await stat(join(dir, name)).catch(() => undefined)
      if (!info?.isFile()) return undefined
      const bytes = await readOrAbsent(join(dir, name))
      return bytes === undefined ? undefined : { name, text: bytes.toString('utf8') }
    }),
  )
  return files.filter(f => f !== undefined)
}

/** Puts back what the state recorded: the original bytes if the file is still ours as written, else takes out our entry. */
const restore = async (target: InstallTarget, state: State, logger: Logger): Promise<void> => {
  const path = join(target.confDir, state.file)
  const current = await readOrAbsent(path)
  const originalPath = join(target.confDir, state.original.name)
  const renamed = state.original.name !== state.file
  if (current !== undefined && renamed && (await readOrAbsent(originalPath)) !== undefined) {
    // The primary CNI wrote its single-plugin file again: that is the file now, and our list of the old one goes.
    await unlink(path).catch(failed('remove', path))
    logger.event('unchained', `${state.original.name} was written again by its owner: ${state.file}, our list made from it, removed`)
  } else if (current !== undefined && sha256(current) === state.written) {
    await writeAtomic(originalPath, Buffer.from(state.original.bytes, 'base64'), await modeOf(path, 0o644))
    if (renamed) await unlink(path).catch(failed('remove', path))
    logger.event('restored', `${state.original.name} restored byte-identical to what it was before ${PLUGIN_TYPE} was chained`)
  } else if (current !== undefined && hasOurs(current.toString('utf8'))) {
    await writeAtomic(path, unchain(current.toString('utf8')), await modeOf(path, 0o644))
    logger.event('unchained', `${state.file} was rewritten since it was chained: only the ${PLUGIN_TYPE} entry was taken out`)
  }
  await unlink(statePath(target)).catch(failed('remove', statePath(target)))
}

const installPlugin = async (target: InstallTarget, logger: Logger): Promise<void> => {
  const path = pluginPath(target)
  const current = await readOrAbsent(path)
  if (current?.equals(target.plugin) && (await modeOf(path, 0)) === 0o755) return
  await writeAtomic(path, target.plugin, 0o755)
  logger.event('installed', `${path} written (${target.plugin.length} bytes, mode 0755)`)
}

export type Outcome = 'chained' | 'unchanged' | 'waiting'

/**
 * reconcile makes the node as it should be: the plugin in the bin directory, our entry last in the primary file
 * (and in no other). Idempotent: when all is in place it writes nothing. Logs what it finds and does; throws
 * EnvironmentError when a read or write fails. `said` holds what the last check found, so a finding is logged
 * once while it lasts, not at every periodic check.
 */
export const reconcile = async (target: InstallTarget, logger: Logger, said: Set<string>): Promise<Outcome> => {
  await installPlugin(target, logger)
  const { primary, skipped } = choosePrimary(await readConfFiles(target.confDir))
  const reason =
    primary === undefined
      ? `no CNI config in ${target.confDir} yet (no *.conflist, *.conf or *.json that loads): waiting for the primary CNI to write one`
      : refuseVersion(primary)
  // What this check finds is logged when it was not found by the last one: the periodic check does not repeat it.
  const found = [
    ...skipped.map(s => ['skipped', `${s.name} in ${target.confDir} is ${s.reason}: the runtime skips it too`] as const),
    ...(reason === undefined ? [] : [['waiting', reason] as const]),
  ]
  for (const [event, message] of found) if (!said.has(message)) logger.event(event, message)
  said.clear()
  for (const [, message] of found) said.add(message)
  let state = await readState(target)
  // Our entry goes where the runtime reads: out of a file that is no longer the primary (or that we cannot serve).
  if (state !== undefined && (reason !== undefined || state.file !== primary?.name)) {
    await restore(target, state, logger)
    state = undefined
  }
  if (primary === undefined || reason !== undefined) return 'waiting'
  const wanted = chain(primary, target.entry)
  if (wanted.name === primary.name && wanted.text === primary.text) return 'unchanged'
  // Untouched since we wrote it (only our entry changed): what it was before stays the original. Otherwise the
  // primary CNI wrote this text, and that (without any entry of ours it kept) is what uninstall puts back.
  const untouched = state !== undefined && sha256(primary.text) === state.written
  const original = untouched
    ? state!.original
    : { name: primary.name, bytes: Buffer.from(hasOurs(primary.text) ? unchain(primary.text) : primary.text).toString('base64') }
  const from = join(target.confDir, primary.name)
  const mode = await modeOf(from, 0o644)
  await writeAtomic(join(target.confDir, wanted.name), wanted.text, mode)
  if (wanted.name !== primary.name) await unlink(from).catch(failed('remove', from))
  await writeState(target, { file: wanted.name, original, written: sha256(wanted.text) })
  logger.event(
    'chained',
    wanted.name === primary.name
      ? `${PLUGIN_TYPE} chained as the last plugin of ${wanted.name}`
      : `${primary.name} (one plugin) turned into the list ${wanted.name} with ${PLUGIN_TYPE} chained last`,
  )
  return 'chained'
}

/** uninstall takes our entry out of every config file (restoring the original bytes where it can) and removes the plugin if it is ours. */
export const uninstall = async (target: InstallTarget, logger: Logger): Promise<void> => {
  const state = await readState(target)
  if (state !== undefined) await restore(target, state, logger)
  for (const file of await readConfFiles(target.confDir)) {
    if (!hasOurs(file.text)) continue
    const path = join(target.confDir, file.name)
    await writeAtomic(path, unchain(file.text), await modeOf(path, 0o644))
    logger.event('unchained', `the ${PLUGIN_TYPE} entry taken out of ${file.name}`)
  }
  const path = pluginPath(target)
  const current = await readOrAbsent(path)
  if (current?.equals(target.plugin)) {
    await unlink(path).catch(failed('remove', path))
    logger.event('removed', `${path} removed`)
  } else if (current !== undefined) {
    logger.event('kept', `${path} is not the plugin this installer copied (its bytes differ): left in place`)
  }
}
