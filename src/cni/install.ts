// The installer's work: the plugin into the host's CNI bin directory, our entry into the config the runtime uses,
// and both out again. It touches only its own names: the state file, its temp files, the file it chains into (or
// the list it makes of a single-plugin file) and the plugin's file; each write a compare-and-swap (host-files.ts).
// It chains only into a file its own next check accepts unchanged, by libcni's loading rules (conflist.ts), so it
// never cycles; whatever it cannot judge (too large, not readable), and whatever sorts after that, is left alone
// with a reason. What the file was before, bytes, mode and owner or the link it was, is kept in the state file,
// which survives a restart: uninstall puts it back when the file is still exactly what we wrote, and otherwise (the
// primary CNI rewrote it since) takes out only our entry.

import { lstat, readdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log.js'
import {
  type Config,
  type Skipped,
  type Undecided,
  chain,
  choosePrimary,
  extensionOf,
  hasOurs,
  isConfName,
  othersIn,
  PLUGIN_TYPE,
  refuseChain,
  unchain,
} from './conflist.js'
import { type Content, type Entry, readEntry, removeIfUnchanged, replaceIfUnchanged, sha256, type Swap, TEMP_PREFIX, writeOwn } from './host-files.js'
import { type Original, parseState, renderState, STATE_FILE, type State } from './install-state.js'

export { STATE_FILE }

export interface InstallTarget {
  readonly confDir: string
  readonly binDir: string
  /** The plugin executable's bytes, as shipped. */
  readonly plugin: Buffer
  /** Our entry in the conflist. */
  readonly entry: Readonly<Record<string, unknown>>
}

// Bounds on what one check reads, whatever the directory holds: a file larger than this is not judged; more files
// than this before one that loads are not read.
export const MAX_CONF_BYTES = 1 << 20
const MAX_STATE_BYTES = 4 * MAX_CONF_BYTES
const MAX_FILES = 1000
const MAX_PLUGIN_BYTES = 256 << 20
// A check that finds its files changed under it (a compare-and-swap lost) starts over, at most this many times.
const ATTEMPTS = 5

/** What one check finds is logged when the last check did not find it: the periodic check does not repeat it. */
class Findings {
  private readonly now = new Set<string>()
  constructor(
    private readonly logger: Logger,
    private readonly said: Set<string>,
  ) {}
  note(event: string, message: string): void {
    if (!this.said.has(message) && !this.now.has(message)) this.logger.event(event, message)
    this.now.add(message)
  }
  done(): void {
    this.said.clear()
    for (const message of this.now) this.said.add(message)
  }
  event(event: string, message: string): void {
    this.logger.event(event, message)
  }
}

const statePath = (target: InstallTarget): string => join(target.confDir, STATE_FILE)
const pluginPath = (target: InstallTarget): string => join(target.binDir, PLUGIN_TYPE)

const describe = (entry: Entry): string =>
  entry.kind === 'symlink'
    ? `a symbolic link (to ${JSON.stringify(entry.target)})`
    : entry.kind === 'other'
      ? entry.what
      : entry.kind === 'large'
        ? `${entry.size} bytes or more`
        : entry.kind === 'absent'
          ? 'gone'
          : 'a file'

/** The state file, if it is one this installer wrote; anything else is noted and ignored, never followed. */
const readState = async (target: InstallTarget, findings: Findings): Promise<State | undefined> => {
  const entry = await readEntry(statePath(target), MAX_STATE_BYTES)
  if (entry.kind === 'absent') return undefined
  const why = entry.kind === 'file' ? parseState(entry.bytes) : describe(entry)
  if (typeof why !== 'string') return why
  findings.note('ignored', `${statePath(target)} is not the state this installer writes (${why}): ignored, and replaced when it next chains`)
  return undefined
}

const removeState = async (target: InstallTarget): Promise<void> => {
  await unlink(statePath(target)).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error
  })
}

/** The config file names of the directory, as libcni's ConfFiles lists them (not directories), and any that are not UTF-8. */
const listConfNames = async (dir: string): Promise<{ names: string[]; odd: Set<string> }> => {
  const names: string[] = []
  const odd = new Set<string>()
  for (const dirent of await readdir(dir, { withFileTypes: true, encoding: 'buffer' })) {
    if (dirent.isDirectory()) continue
    const raw = dirent.name as unknown as Buffer
    const name = raw.toString('utf8')
    if (!isConfName(name)) continue
    names.push(name)
    if (!Buffer.from(name).equals(raw)) odd.add(name)
  }
  return { names, odd }
}

/** Reads config files for choosePrimary, within the check's bounds, keeping what it read. */
const loader = (dir: string, odd: ReadonlySet<string>, entries: Map<string, Entry>) => {
  let files = 0
  return async (name: string): Promise<Buffer | Undecided | Skipped> => {
    if (odd.has(name)) return { name, undecided: 'named in bytes that are not UTF-8, which this installer does not read' }
    const known = entries.get(name)
    if (known === undefined && ++files > MAX_FILES) {
      return { name, undecided: `past the first ${MAX_FILES} config files, more than this installer reads in one check` }
    }
    const entry = known ?? (await readEntry(join(dir, name), MAX_CONF_BYTES))
    entries.set(name, entry)
    const read = entry.kind === 'symlink' ? entry.followed : entry
    if (read.kind === 'file') return read.bytes
    if (read.kind === 'large') return { name, undecided: `${describe(read)}, more than the ${MAX_CONF_BYTES} bytes this installer reads` }
    return { name, reason: entry.kind === 'symlink' ? `a link to what is ${describe(read)}` : describe(read) }
  }
}

/** The regular file a config entry stands for (the link's target for a link). */
const fileOf = (entry: Entry | undefined): Extract<Entry, { kind: 'file' }> | undefined => {
  const read = entry?.kind === 'symlink' ? entry.followed : entry
  return read?.kind === 'file' ? read : undefined
}

/** What a file was before we chained it: a link stays a link; a file keeps its bytes (without any entry of ours). */
const originalOf = (name: string, entry: Entry): Original => {
  if (entry.kind === 'symlink') return { name, symlink: { target: entry.target, uid: entry.uid, gid: entry.gid } }
  const file = fileOf(entry)!
  return { name, file: { bytes: hasOurs(file.bytes) ? unchain(file.bytes) : file.bytes, mode: file.mode & 0o777, uid: file.uid, gid: file.gid } }
}

const contentOf = (original: Original): Content =>
  'file' in original ? original.file : { symlink: original.symlink.target, uid: original.symlink.uid, gid: original.symlink.gid }

/** Puts back what the state recorded, if the file is still what we wrote; else takes out only our entry. */
const restore = async (target: InstallTarget, state: State, findings: Findings): Promise<Swap> => {
  const dir = target.confDir
  const path = join(dir, state.file)
  const current = await readEntry(path, MAX_CONF_BYTES)
  const renamed = state.original.name !== state.file
  const originalPath = join(dir, state.original.name)
  const ours = current.kind === 'file' && sha256(current.bytes) === state.written
  if (renamed && ours && (await readEntry(originalPath, 0)).kind !== 'absent') {
    // The primary CNI wrote its single-plugin file again: that is the file now, and our list made from it goes.
    if ((await removeIfUnchanged(path, current, MAX_CONF_BYTES)) === 'changed') return 'changed'
    findings.event('unchained', `${state.original.name} was written again by its owner: ${state.file}, our list made from it, removed`)
  } else if (ours) {
    const content = contentOf(state.original)
    if (!renamed) {
      if ((await replaceIfUnchanged(path, current, content, MAX_CONF_BYTES)) === 'changed') return 'changed'
    } else {
      if ((await replaceIfUnchanged(originalPath, { kind: 'absent' }, content, MAX_CONF_BYTES)) === 'changed') return 'changed'
      if ((await removeIfUnchanged(path, current, MAX_CONF_BYTES)) === 'changed') return 'changed'
    }
    findings.event(
      'restored',
      'file' in state.original
        ? `${state.original.name} restored byte-identical (mode 0${state.original.file.mode.toString(8)}, owner ${state.original.file.uid}:${state.original.file.gid}) to what it was before ${PLUGIN_TYPE} was chained`
        : `${state.original.name} restored as the symbolic link to ${JSON.stringify(state.original.symlink.target)} it was before ${PLUGIN_TYPE} was chained`,
    )
  } else if (current.kind === 'file' && hasOurs(current.bytes)) {
    if (othersIn(current.bytes) === 0) {
      findings.event(
        'kept',
        `${state.file} holds no plugin but ${PLUGIN_TYPE} now: left as it is, since without it the runtime would not load the file`,
      )
    } else {
      const content = { bytes: unchain(current.bytes), mode: current.mode, uid: current.uid, gid: current.gid }
      if ((await replaceIfUnchanged(path, current, content, MAX_CONF_BYTES)) === 'changed') return 'changed'
      findings.event('unchained', `${state.file} was rewritten since it was chained: only the ${PLUGIN_TYPE} entry was taken out`)
    }
  }
  await removeState(target)
  return 'done'
}

const installPlugin = async (target: InstallTarget, findings: Findings): Promise<void> => {
  const path = pluginPath(target)
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const current = await readEntry(path, MAX_PLUGIN_BYTES)
    if (current.kind === 'file' && current.bytes.equals(target.plugin) && current.mode === 0o755) return
    if ((await replaceIfUnchanged(path, current, { bytes: target.plugin, mode: 0o755 }, MAX_PLUGIN_BYTES)) === 'done') {
      findings.event('installed', `${path} written (${target.plugin.length} bytes, mode 0755)`)
      return
    }
  }
  findings.note('failed', `${path} kept changing while it was written: trying again at the next check`)
}

/** Why chaining `wanted` in would not be what the next check finds and keeps, or undefined. */
const refuseUnstable = async (
  target: InstallTarget,
  names: readonly string[],
  read: ReturnType<typeof loader>,
  primary: Config,
  wanted: { name: string; bytes: Buffer },
): Promise<string | undefined> => {
  const renamed = wanted.name !== primary.name
  const after = [...names.filter(n => !(renamed && n === primary.name)), ...(names.includes(wanted.name) ? [] : [wanted.name])]
  const next = await choosePrimary(after, async name => (name === wanted.name ? wanted.bytes : read(name)))
  const pick = next.primary
  if (pick?.name !== wanted.name) {
    return `turning ${primary.name} into ${wanted.name} would make ${pick?.name ?? next.undecided?.name ?? 'no file'} the runtime's pick instead, so it is left alone`
  }
  const again = refuseChain(pick) === undefined ? chain(pick, target.entry) : undefined
  if (again?.name !== wanted.name || !again.bytes.equals(wanted.bytes))
    return `${wanted.name} as chained would not be accepted by the next check unchanged, so it is left alone`
  return undefined
}

export type Outcome = 'chained' | 'unchanged' | 'waiting'

const reconcileOnce = async (target: InstallTarget, findings: Findings): Promise<Outcome | 'again'> => {
  const dir = target.confDir
  const state = await readState(target, findings)
  const { names, odd } = await listConfNames(dir)
  const entries = new Map<string, Entry>()
  const read = loader(dir, odd, entries)
  const { primary, skipped, undecided } = await choosePrimary(names, read)
  for (const s of skipped) findings.note('skipped', `${s.name} in ${dir} is ${s.reason}: the runtime skips it too`)
  const wanted = primary === undefined || refuseChain(primary) !== undefined ? undefined : chain(primary, target.entry)
  const exists = wanted !== undefined && wanted.name !== primary?.name && names.includes(wanted.name)
  const reason = undecided
    ? `${undecided.name} in ${dir} is ${undecided.undecided}: whether the runtime loads it cannot be told, so nothing is chained while it sorts first`
    : primary === undefined
      ? `no CNI config in ${dir} yet (no *.conflist, *.conf or *.json that loads): waiting for the primary CNI to write one`
      : (refuseChain(primary) ??
        (exists ? `${primary.name} would become ${wanted!.name}, but a file of that name is there already, not ours: left alone` : undefined) ??
        (await refuseUnstable(target, names, read, primary, wanted!)))
  // Our entry goes where the runtime reads: out of a file that is no longer the primary (or that we cannot serve).
  if (state !== undefined && (reason !== undefined || state.file !== primary?.name)) {
    await restore(target, state, findings)
    return 'again'
  }
  if (reason !== undefined) {
    findings.note('waiting', reason)
    return 'waiting'
  }
  const entry = entries.get(primary!.name)!
  const file = fileOf(entry)!
  const path = join(dir, primary!.name)
  // Untouched since we wrote it (only our entry changed): what it was before stays the original. Otherwise the
  // primary CNI wrote these bytes, and they (without any entry of ours they kept) are what uninstall puts back.
  const untouched = state !== undefined && entry.kind === 'file' && sha256(file.bytes) === state.written
  const original = untouched ? state.original : originalOf(primary!.name, entry)
  if (wanted!.name === primary!.name && wanted!.bytes.equals(primary!.bytes)) {
    // In place already; a lost state is written again, so uninstall knows what to put back.
    if (state === undefined) await writeOwn(statePath(target), renderState({ file: primary!.name, written: sha256(file.bytes), original }), 0o600)
    return 'unchanged'
  }
  // The state first: a crash after it leaves a state that says what to undo; one before it, nothing written.
  await writeOwn(statePath(target), renderState({ file: wanted!.name, written: sha256(wanted!.bytes), original }), 0o600)
  const content = { bytes: wanted!.bytes, mode: file.mode & 0o777, uid: file.uid, gid: file.gid }
  if (wanted!.name === primary!.name) {
    if ((await replaceIfUnchanged(path, entry, content, MAX_CONF_BYTES)) === 'changed') return 'again'
  } else {
    if ((await replaceIfUnchanged(join(dir, wanted!.name), { kind: 'absent' }, content, MAX_CONF_BYTES)) === 'changed') return 'again'
    if ((await removeIfUnchanged(path, entry, MAX_CONF_BYTES)) === 'changed') return 'again'
  }
  findings.event(
    'chained',
    wanted!.name === primary!.name
      ? `${PLUGIN_TYPE} chained as the last plugin of ${wanted!.name}${entry.kind === 'symlink' ? ` (it was a link to ${JSON.stringify(entry.target)}, left untouched; uninstall puts the link back)` : ''}`
      : `${primary!.name} (one plugin) turned into the list ${wanted!.name} with ${PLUGIN_TYPE} chained last`,
  )
  return 'chained'
}

/**
 * reconcile makes the node as it should be: the plugin in the bin directory, our entry last in the config the
 * runtime uses (and in no other), or nothing chained and a reason logged. Idempotent: when all is in place it
 * writes nothing. A finding is logged once while it lasts (`said` holds what the last check found), not at every
 * periodic check. Throws when a read or write fails; the directory's contents alone never make it throw.
 */
export const reconcile = async (target: InstallTarget, logger: Logger, said: Set<string>): Promise<Outcome> => {
  const findings = new Findings(logger, said)
  try {
    await installPlugin(target, findings)
    let outcome: Outcome | 'again' = 'again'
    for (let attempt = 1; attempt <= ATTEMPTS && outcome === 'again'; attempt++) outcome = await reconcileOnce(target, findings)
    if (outcome !== 'again') return outcome
    findings.note('waiting', `${target.confDir} kept changing during the check: trying again at the next change or check`)
    return 'waiting'
  } finally {
    findings.done()
  }
}

/** uninstall takes our entry out of every config file (restoring the original where it can) and removes the plugin if it is ours. */
export const uninstall = async (target: InstallTarget, logger: Logger): Promise<void> => {
  const findings = new Findings(logger, new Set())
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const state = await readState(target, findings)
    if (state === undefined || (await restore(target, state, findings)) === 'done') break
  }
  // Entries of ours the state does not name (a state lost, a copy the primary CNI made): regular lists only.
  for (const name of (await listConfNames(target.confDir)).names.filter(n => extensionOf(n) === '.conflist')) {
    const path = join(target.confDir, name)
    const current = await readEntry(path, MAX_CONF_BYTES)
    if (current.kind !== 'file' || !hasOurs(current.bytes)) continue
    if (othersIn(current.bytes) === 0) {
      findings.event('kept', `${name} holds no plugin but ${PLUGIN_TYPE}: left as it is, since without it the runtime would not load the file`)
      continue
    }
    const content = { bytes: unchain(current.bytes), mode: current.mode, uid: current.uid, gid: current.gid }
    if ((await replaceIfUnchanged(path, current, content, MAX_CONF_BYTES)) === 'done')
      findings.event('unchained', `the ${PLUGIN_TYPE} entry taken out of ${name}`)
  }
  const path = pluginPath(target)
  const current = await readEntry(path, MAX_PLUGIN_BYTES)
  if (current.kind === 'file' && current.bytes.equals(target.plugin)) {
    if ((await removeIfUnchanged(path, current, MAX_PLUGIN_BYTES)) === 'done') findings.event('removed', `${path} removed`)
  } else if (current.kind !== 'absent') {
    findings.event(
      'kept',
      `${path} is not the plugin this installer copied (it is ${describe(current)}${current.kind === 'file' ? ' with other bytes' : ''}): left in place`,
    )
  }
}

// A temp file of ours older than this was left by an installer that died mid-write (a live one is done in
// milliseconds; an overlapping one, as in a rolling update, must not lose its own).
const LEFTOVER_MS = 10 * 60 * 1000
const OUR_TEMP = new RegExp(`^${TEMP_PREFIX.replace(/\./g, '\\.')}[0-9a-f]{32}$`)

/** removeLeftovers removes temp files of ours that a crash left in `dir`: our names only, never through a link. */
export const removeLeftovers = async (dir: string, now = Date.now()): Promise<void> => {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!OUR_TEMP.test(name)) continue
    const s = await lstat(join(dir, name)).catch(() => undefined)
    if (s !== undefined && (s.isFile() || s.isSymbolicLink()) && now - s.mtimeMs > LEFTOVER_MS) await unlink(join(dir, name)).catch(() => undefined)
  }
}
