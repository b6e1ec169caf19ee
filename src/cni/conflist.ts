// The host's CNI config, as the runtime reads it, and our entry in it. Pure: file names and texts in, texts out.
// Which file counts: libcni's ConfFiles lists *.conf, *.conflist and *.json in the directory; kubelet's dockershim,
// CRI-O (ocicni) and containerd (go-cni, max_conf_num 1) sort the names (Go's sort.Strings) and take the first one
// that loads, skipping files that do not, as Istio's and Linkerd's install-cni do when they pick the file to chain
// into. A .conf or .json file holds one plugin, so chaining turns it into a list (Istio renames it to .conflist).
// Edits are made in the text, not by re-serialising, so every byte outside our element stays the owner's.

import { SUPPORTED_VERSIONS } from './config.js'
import { locateJson, type Located } from './json-text.js'

export const PLUGIN_TYPE = 'sidecar-redirect'
export const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'] as const

export interface ConfFile {
  readonly name: string
  readonly text: string
}

export interface Primary extends ConfFile {
  /** list: a .conflist; single: a .conf or .json holding one plugin. */
  readonly kind: 'list' | 'single'
  readonly cniVersion: string
}

export interface Skipped {
  readonly name: string
  readonly reason: string
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

const extensionOf = (name: string): string => {
  const dot = name.lastIndexOf('.')
  // As Go's filepath.Ext: from the last dot, even a leading one.
  return dot < 0 ? '' : name.slice(dot)
}

/** isConfName says whether the runtime reads a file of this name as CNI config. Pure. */
export const isConfName = (name: string): boolean => (CONF_EXTENSIONS as readonly string[]).includes(extensionOf(name))

// What libcni refuses when it loads a file (ConfListFromBytes / ConfFromBytes): the runtime then skips it.
const loadAs = (file: ConfFile): Primary | Skipped => {
  let value: unknown
  try {
    value = JSON.parse(file.text)
  } catch (error) {
    return { name: file.name, reason: `not valid JSON (${error instanceof Error ? error.message : String(error)})` }
  }
  if (!isRecord(value)) return { name: file.name, reason: 'not a JSON object' }
  const cniVersion = typeof value['cniVersion'] === 'string' ? value['cniVersion'] : ''
  if (extensionOf(file.name) === '.conflist') {
    const plugins = value['plugins']
    if (typeof value['name'] !== 'string' || value['name'] === '') return { name: file.name, reason: 'a conflist without a "name"' }
    if (!Array.isArray(plugins) || plugins.length === 0 || !plugins.every(isRecord)) {
      return { name: file.name, reason: 'a conflist without a non-empty "plugins" list of objects' }
    }
    return { ...file, kind: 'list', cniVersion }
  }
  if (typeof value['type'] !== 'string') return { name: file.name, reason: 'a single-plugin config without a "type"' }
  return { ...file, kind: 'single', cniVersion }
}

/**
 * choosePrimary picks the file the runtime uses: the lexically first config file that loads. Files before it
 * that do not load are listed with the reason, since the runtime skips them too. Pure.
 */
export const choosePrimary = (files: readonly ConfFile[]): { primary: Primary | undefined; skipped: Skipped[] } => {
  const skipped: Skipped[] = []
  // Go's sort.Strings compares bytes; for names this is the same as comparing code units.
  for (const file of [...files].filter(f => isConfName(f.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const loaded = loadAs(file)
    if ('kind' in loaded) return { primary: loaded, skipped }
    skipped.push(loaded)
  }
  return { primary: undefined, skipped }
}

/** Why we cannot chain into this file (our plugin would refuse every ADD), or undefined. Pure. */
export const refuseVersion = (primary: Primary): string | undefined =>
  (SUPPORTED_VERSIONS as readonly string[]).includes(primary.cniVersion)
    ? undefined
    : `${primary.name} has cniVersion ${JSON.stringify(primary.cniVersion)}; the ${PLUGIN_TYPE} plugin speaks ${SUPPORTED_VERSIONS.join(' and ')}, so it is not chained (the runtime would fail every pod's ADD)`

const pluginsOf = (text: string): readonly Located[] => {
  const root = locateJson(text)
  // JSON.parse keeps the last of duplicate keys, and so does libcni's decoder.
  const plugins = root.kind === 'object' ? [...root.members].reverse().find(m => m.key === 'plugins')?.value : undefined
  return plugins?.kind === 'array' ? plugins.items : []
}

const isOurs = (text: string, item: Located): boolean => {
  const value: unknown = JSON.parse(text.slice(item.start, item.end))
  return isRecord(value) && value['type'] === PLUGIN_TYPE
}

/** hasOurs says whether a conflist text holds an entry of our type. Pure. */
export const hasOurs = (text: string): boolean => {
  try {
    return pluginsOf(text).some(item => isOurs(text, item))
  } catch {
    return false
  }
}

/** unchain removes every entry of ours from a conflist text, with the separator before it; nothing else. Pure. */
export const unchain = (text: string): string => {
  const items = pluginsOf(text)
  let out = text
  for (let k = items.length - 1; k >= 0; k--) {
    const item = items[k]!
    if (!isOurs(text, item)) continue
    const next = items[k + 1]
    const [from, to] = k > 0 ? [items[k - 1]!.end, item.end] : next !== undefined ? [item.start, next.start] : [item.start, item.end]
    out = out.slice(0, from) + out.slice(to)
  }
  return out
}

// The indentation of the line a value starts on, when it starts its own line.
const lineIndent = (text: string, at: number): string | undefined => {
  const lineStart = text.lastIndexOf('\n', at - 1) + 1
  const before = text.slice(lineStart, at)
  return /^[ \t]*$/.test(before) ? before : undefined
}

// One indentation step of the file: its first indented line's, else two spaces.
const indentUnit = (text: string): string => /\n([ \t]+)\S/.exec(text)?.[1] ?? '  '

const renderEntry = (entry: unknown, indent: string, unit: string): string => JSON.stringify(entry, null, unit).split('\n').join(`\n${indent}`)

const appendTo = (text: string, entry: unknown): string => {
  const items = pluginsOf(text)
  const last = items.at(-1)!
  const indent = lineIndent(text, last.start)
  const added = indent === undefined ? `, ${JSON.stringify(entry)}` : `,\n${indent}${renderEntry(entry, indent, indentUnit(text))}`
  return text.slice(0, last.end) + added + text.slice(last.end)
}

/** The name a single-plugin file gets once it is a list: 10-x.conf and 10-x.json become 10-x.conflist. Pure. */
export const listName = (name: string): string => `${name.slice(0, name.length - extensionOf(name).length)}.conflist`

/**
 * chain puts our entry last in the primary file: a list keeps its text and gains one element (any older entry
 * of ours is taken out first); a single-plugin file becomes a list holding its text verbatim, then ours. Pure.
 */
export const chain = (primary: Primary, entry: unknown): ConfFile => {
  if (primary.kind === 'list') return { name: primary.name, text: appendTo(unchain(primary.text), entry) }
  const conf = JSON.parse(primary.text) as Record<string, unknown>
  const head = `{\n  "cniVersion": ${JSON.stringify(primary.cniVersion)},\n  "name": ${JSON.stringify(conf['name'] ?? '')},\n  "plugins": [\n`
  const text = `${head}${primary.text.trim()},\n    ${renderEntry(entry, '    ', '  ')}\n  ]\n}\n`
  return { name: listName(primary.name), text }
}
