// The host's CNI config, as the runtime reads it, and our entry in it. Pure: names and bytes in, bytes out.
// Which file counts: libcni's ConfFiles lists the *.conf, *.conflist and *.json entries of the directory that are
// not directories; containerd (go-cni), CRI-O (ocicni) and kubelet sort the names (Go's sort.Strings, by bytes) and
// take the first that loads, skipping the others. "Loads" is libcni 1.1's ConfListFromBytes for a .conflist and
// ConfFromBytes then ConfListFromConf for the others (libcni/conf.go), whose decoding into types.NetConf is
// reproduced here: keys matched case-insensitively, the last one winning, a value of the wrong type failing the
// file, a name not required of a single-plugin file. A .conf or .json file holds one plugin, so chaining turns it
// into a list (as Istio's installer does). Edits are made in the bytes, so every byte outside our element, invalid
// UTF-8 included, stays the owner's.

import { SUPPORTED_VERSIONS } from './config.js'
import { decodeString, KIND_BITS, type Located, type Member, type Outline, scanJson } from './json-text.js'

export const PLUGIN_TYPE = 'sidecar-redirect'
export const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'] as const

/** A file that loads: what the runtime would run. */
export interface Config {
  readonly name: string
  readonly bytes: Buffer
  /** list: a .conflist; single: a .conf or .json holding one plugin. */
  readonly kind: 'list' | 'single'
  /** The list's cniVersion, or the single plugin's (which libcni gives the list it makes of it). */
  readonly cniVersion: string
  /** The network's name, as above ("" for a single plugin without one: libcni loads it so). */
  readonly network: string
}

export interface Skipped {
  readonly name: string
  readonly reason: string
}

export type Loaded = Config | Skipped

export const isConfig = (loaded: Loaded | undefined): loaded is Config => loaded !== undefined && 'kind' in loaded

/** As Go's filepath.Ext: from the last dot, even a leading one. Pure. */
export const extensionOf = (name: string): string => {
  const dot = name.lastIndexOf('.')
  return dot < 0 || name.indexOf('/', dot) >= 0 ? '' : name.slice(dot)
}

/** isConfName says whether the runtime reads a file of this name as CNI config. Pure. */
export const isConfName = (name: string): boolean => (CONF_EXTENSIONS as readonly string[]).includes(extensionOf(name))

/** The name a single-plugin file gets once it is a list: 10-x.conf and 10-x.json become 10-x.conflist. Pure. */
export const listName = (name: string): string => `${name.slice(0, name.length - extensionOf(name).length)}.conflist`

/** Go's sort.Strings order: by UTF-8 bytes, not UTF-16 code units. Pure. */
export const compareNames = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

// ---- types.NetConf, as encoding/json fills it ----

// encoding/json matches a key to a field ignoring ASCII case, and also folds the Kelvin sign to k and the long s
// to s (its equalFoldRight); every other character must be equal.
const fold = (key: string): string =>
  [...key].map(c => (c === '\u212a' ? 'k' : c === '\u017f' ? 's' : c >= 'A' && c <= 'Z' ? c.toLowerCase() : c)).join('')

type Check = (bytes: Buffer, value: Located, order: Order) => string | undefined
// 'file': the keys as written (ConfFromBytes on a file); 'marshal': libcni re-encodes each plugin of a list from a
// Go map first, so duplicate keys are gone (the last kept) and the rest sorted by bytes.
type Order = 'file' | 'marshal'

const membersIn = (value: Extract<Located, { kind: 'object' }>, order: Order): readonly Member[] => {
  if (order === 'file') return value.members
  const last = new Map<string, Member>()
  for (const member of value.members) last.set(member.key, member)
  return [...last.values()].sort((a, b) => compareNames(a.key, b.key))
}

const typeError = (want: string, value: Located, field: string): string =>
  `"${field}" is ${value.kind === 'true' || value.kind === 'false' ? 'a boolean' : `a JSON ${value.kind}`}, not ${want}`

const stringField =
  (field: string): Check =>
  (_bytes, value) =>
    value.kind === 'string' || value.kind === 'null' ? undefined : typeError('a string', value, field)

const STRING_OR_NULL = KIND_BITS.string | KIND_BITS.null
const BOOLEAN_OR_NULL = KIND_BITS.true | KIND_BITS.false | KIND_BITS.null

const stringList =
  (field: string): Check =>
  (_bytes, value) => {
    if (value.kind === 'null') return undefined
    if (value.kind !== 'array') return typeError('a list of strings', value, field)
    return (value.holds & ~STRING_OR_NULL) === 0 ? undefined : `"${field}" holds a value that is not a string`
  }

const struct =
  (field: string, fields: Readonly<Record<string, Check>>): Check =>
  (bytes, value, order) => {
    if (value.kind === 'null') return undefined
    if (value.kind !== 'object') return typeError('an object', value, field)
    for (const member of membersIn(value, order)) {
      const folded = fold(member.key)
      const error = Object.hasOwn(fields, folded) ? fields[folded]!(bytes, member.value, order) : undefined
      if (error !== undefined) return error
    }
    return undefined
  }

const NET_CONF_FIELDS: Readonly<Record<string, Check>> = {
  cniversion: stringField('cniVersion'),
  name: stringField('name'),
  type: stringField('type'),
  capabilities: (_bytes, value) => {
    if (value.kind === 'null') return undefined
    if (value.kind !== 'object') return typeError('an object', value, 'capabilities')
    return (value.holds & ~BOOLEAN_OR_NULL) === 0 ? undefined : '"capabilities" holds a value that is not a boolean'
  },
  ipam: struct('ipam', { type: stringField('ipam.type') }),
  dns: struct('dns', {
    nameservers: stringList('dns.nameservers'),
    domain: stringField('dns.domain'),
    search: stringList('dns.search'),
    options: stringList('dns.options'),
  }),
  prevresult: (_bytes, value) => (value.kind === 'object' || value.kind === 'null' ? undefined : typeError('an object', value, 'prevResult')),
}

// What the scan keeps: only the members these checks read (by folded name), so a file full of other values costs
// no more than its bytes.
const LEAF: Outline = {}
const keepFolded =
  (fields: Readonly<Record<string, Outline>>) =>
  (key: string): Outline | undefined => {
    const field = fold(key)
    // Own keys only: a key such as "constructor" is not a field.
    return Object.hasOwn(fields, field) ? fields[field] : undefined
  }
const PLUGIN_OUTLINE: Outline = {
  keep: keepFolded({
    cniversion: LEAF,
    name: LEAF,
    type: LEAF,
    capabilities: LEAF,
    prevresult: LEAF,
    ipam: { keep: keepFolded({ type: LEAF }) },
    dns: { keep: keepFolded({ nameservers: LEAF, domain: LEAF, search: LEAF, options: LEAF }) },
  }),
}
const LIST_KEYS: Readonly<Record<string, Outline>> = { name: LEAF, cniVersion: LEAF, disableCheck: LEAF, plugins: { items: PLUGIN_OUTLINE } }
const LIST_OUTLINE: Outline = { keep: key => (Object.hasOwn(LIST_KEYS, key) ? LIST_KEYS[key] : undefined) }

interface NetConf {
  readonly cniVersion: string
  readonly name: string
  readonly type: string
}

/** What json.Unmarshal into types.NetConf gives, or why it fails. */
const decodeNetConf = (bytes: Buffer, value: Located, order: Order): NetConf | string => {
  // Unmarshalling null into a struct leaves it as it was: empty, so without a type.
  if (value.kind === 'null') return { cniVersion: '', name: '', type: '' }
  if (value.kind !== 'object') return `a JSON ${value.kind}, not a plugin object`
  const error = struct('', NET_CONF_FIELDS)(bytes, value, order)
  if (error !== undefined) return error
  const found: Record<string, string> = { cniversion: '', name: '', type: '' }
  for (const member of membersIn(value, order)) {
    const field = fold(member.key)
    if (Object.hasOwn(found, field) && member.value.kind === 'string') found[field] = decodeString(bytes, member.value)
  }
  return { cniVersion: found['cniversion']!, name: found['name']!, type: found['type']! }
}

// ---- loading a file as libcni does ----

const lastMember = (root: Located, key: string): Located | undefined =>
  root.kind === 'object' ? [...root.members].reverse().find(m => m.key === key)?.value : undefined

/** The plugin elements of a list's text, as libcni reads them (the last "plugins" key wins). */
const pluginItems = (root: Located): readonly Located[] => {
  const plugins = lastMember(root, 'plugins')
  return plugins?.kind === 'array' ? plugins.items : []
}

const loadList = (name: string, bytes: Buffer, root: Located): Loaded => {
  const skip = (reason: string): Skipped => ({ name, reason: `a conflist ${reason}` })
  if (root.kind !== 'object') return skip(`that is a JSON ${root.kind}, not an object`)
  const network = lastMember(root, 'name')
  if (network === undefined) return skip('without a "name"')
  if (network.kind !== 'string') return skip(`whose "name" is a JSON ${network.kind}, not a string`)
  const version = lastMember(root, 'cniVersion')
  if (version !== undefined && version.kind !== 'string') return skip(`whose "cniVersion" is a JSON ${version.kind}, not a string`)
  const disableCheck = lastMember(root, 'disableCheck')
  if (disableCheck !== undefined && disableCheck.kind !== 'true' && disableCheck.kind !== 'false')
    return skip('whose "disableCheck" is not a boolean')
  const plugins = lastMember(root, 'plugins')
  if (plugins === undefined || plugins.kind !== 'array' || plugins.items.length === 0) return skip('without a non-empty "plugins" list')
  for (const [index, item] of plugins.items.entries()) {
    const plugin = decodeNetConf(bytes, item, 'marshal')
    if (typeof plugin === 'string') return skip(`whose plugin ${index} does not load: ${plugin}`)
    if (plugin.type === '') return skip(`whose plugin ${index} has no "type"`)
  }
  return {
    name,
    bytes,
    kind: 'list',
    cniVersion: version === undefined ? '' : decodeString(bytes, version),
    network: decodeString(bytes, network),
  }
}

const loadSingle = (name: string, bytes: Buffer, root: Located): Loaded => {
  const skip = (reason: string): Skipped => ({ name, reason: `a single-plugin config ${reason}` })
  const conf = decodeNetConf(bytes, root, 'file')
  if (typeof conf === 'string') return skip(`that does not load: ${conf}`)
  if (conf.type === '') return skip('without a "type"')
  // ConfListFromConf then re-encodes it as the list's only plugin, which must load again in that order.
  const again = decodeNetConf(bytes, root, 'marshal')
  if (typeof again === 'string' || again.type === '') return skip('that does not load once libcni makes a list of it')
  return { name, bytes, kind: 'single', cniVersion: conf.cniVersion, network: conf.name }
}

/** loadConfig says whether libcni loads these bytes under this name, and what it reads. Pure. */
export const loadConfig = (name: string, bytes: Buffer): Loaded => {
  const list = extensionOf(name) === '.conflist'
  const scanned = scanJson(bytes, list ? LIST_OUTLINE : PLUGIN_OUTLINE)
  if (!scanned.ok) return { name, reason: `not valid JSON (${scanned.reason} at byte ${scanned.offset})` }
  return list ? loadList(name, bytes, scanned.root) : loadSingle(name, bytes, scanned.root)
}

/** A file whose contents cannot be judged here (too large, unreadable): the runtime might load it. */
export interface Undecided {
  readonly name: string
  readonly undecided: string
}

export interface Choice {
  /** The file the runtime uses, if the files before it could all be judged. */
  readonly primary: Config | undefined
  /** Files before it (or all, if none loads) that the runtime skips too. */
  readonly skipped: readonly Skipped[]
  /** The first file that could not be judged: nothing after it can be the primary for sure. */
  readonly undecided: Undecided | undefined
}

/**
 * choosePrimary picks the file the runtime uses: the first config file, in Go's order, that loads. `load` gives
 * each file's bytes, or why the runtime cannot read it, or why it cannot be judged here; it is asked in order and
 * no further than needed. Pure but for what `load` does.
 */
export const choosePrimary = async (names: readonly string[], load: (name: string) => Promise<Buffer | Undecided | Skipped>): Promise<Choice> => {
  const skipped: Skipped[] = []
  for (const name of names.filter(isConfName).sort(compareNames)) {
    const bytes = await load(name)
    if ('undecided' in bytes) return { primary: undefined, skipped, undecided: bytes }
    if ('reason' in bytes) {
      skipped.push(bytes)
      continue
    }
    const loaded = loadConfig(name, bytes)
    if (isConfig(loaded)) return { primary: loaded, skipped, undecided: undefined }
    skipped.push(loaded)
  }
  return { primary: undefined, skipped, undecided: undefined }
}

// ---- our entry ----

const isOurs = (bytes: Buffer, item: Located): boolean => {
  const plugin = decodeNetConf(bytes, item, 'marshal')
  return typeof plugin !== 'string' && plugin.type === PLUGIN_TYPE
}

const listItems = (bytes: Buffer): readonly Located[] | undefined => {
  const scanned = scanJson(bytes, LIST_OUTLINE)
  return scanned.ok ? pluginItems(scanned.root) : undefined
}

/** hasOurs says whether a conflist's bytes hold an entry of our type. Pure. */
export const hasOurs = (bytes: Buffer): boolean => listItems(bytes)?.some(item => isOurs(bytes, item)) ?? false

/** The plugins a list holds besides ours. Pure. */
export const othersIn = (bytes: Buffer): number => listItems(bytes)?.filter(item => !isOurs(bytes, item)).length ?? 0

/** unchain removes every entry of ours from a conflist's bytes, with the separator before it; nothing else. Pure. */
export const unchain = (bytes: Buffer): Buffer => {
  const items = listItems(bytes) ?? []
  // latin1 maps each byte to one character and back: offsets stay byte offsets, and every byte survives.
  let out = bytes.toString('latin1')
  for (let k = items.length - 1; k >= 0; k--) {
    const item = items[k]!
    if (!isOurs(bytes, item)) continue
    const next = items[k + 1]
    const [from, to] = k > 0 ? [items[k - 1]!.end, item.end] : next !== undefined ? [item.start, next.start] : [item.start, item.end]
    out = out.slice(0, from) + out.slice(to)
  }
  return Buffer.from(out, 'latin1')
}

// The indentation of the line a value starts on, when it starts its own line.
const lineIndent = (text: string, at: number): string | undefined => {
  const before = text.slice(text.lastIndexOf('\n', at - 1) + 1, at)
  return /^[ \t]*$/.test(before) ? before : undefined
}

// One indentation step of the file: its first indented line's, else two spaces.
const indentUnit = (text: string): string => /\n([ \t]+)\S/.exec(text)?.[1] ?? '  '

const renderEntry = (entry: unknown, indent: string, unit: string): string =>
  Buffer.from(JSON.stringify(entry, null, unit).split('\n').join(`\n${indent}`)).toString('latin1')

/** Why our entry is not chained into this file (the plugin would fail every ADD, or have nothing to follow), or undefined. Pure. */
export const refuseChain = (config: Config): string | undefined => {
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(config.cniVersion)) {
    return `${config.name} has cniVersion ${JSON.stringify(config.cniVersion)}; the ${PLUGIN_TYPE} plugin speaks ${SUPPORTED_VERSIONS.join(' and ')}, so it is not chained (the runtime would fail every pod's ADD)`
  }
  const alone = config.kind === 'list' ? othersIn(config.bytes) === 0 : isOursSingle(config.bytes)
  if (alone) return `${config.name} holds no plugin but ${PLUGIN_TYPE}, which only follows another: there is nothing to chain after`
  return undefined
}

const isOursSingle = (bytes: Buffer): boolean => {
  const scanned = scanJson(bytes, PLUGIN_OUTLINE)
  return scanned.ok && isOurs(bytes, scanned.root)
}

/**
 * chain puts our entry last in the primary file: a list keeps its bytes and gains one element (any older entry of
 * ours is taken out first); a single-plugin file becomes a list holding its bytes verbatim, then ours, with the
 * name and version libcni would give it. Pure; call refuseChain first.
 */
export const chain = (config: Config, entry: unknown): { readonly name: string; readonly bytes: Buffer } => {
  if (config.kind === 'single') {
    // The list libcni would make of it (its name and version), holding its bytes verbatim; then ours as in any list,
    // so the next check, reading a list, finds it exactly as it would chain it.
    const body = config.bytes.toString('latin1').replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '')
    const head = Buffer.from(
      `{\n  "cniVersion": ${JSON.stringify(config.cniVersion)},\n  "name": ${JSON.stringify(config.network)},\n  "plugins": [\n    `,
    )
    const bytes = Buffer.from(`${head.toString('latin1')}${body}\n  ]\n}\n`, 'latin1')
    return chain({ ...config, name: listName(config.name), kind: 'list', bytes }, entry)
  }
  const bytes = unchain(config.bytes)
  const last = listItems(bytes)!.at(-1)!
  const text = bytes.toString('latin1')
  const indent = lineIndent(text, last.start)
  const added = indent === undefined ? `, ${renderEntry(entry, '', '')}` : `,\n${indent}${renderEntry(entry, indent, indentUnit(text))}`
  return { name: config.name, bytes: Buffer.from(text.slice(0, last.end) + added + text.slice(last.end), 'latin1') }
}
