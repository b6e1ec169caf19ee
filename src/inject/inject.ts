// Injection as a JSON patch (RFC 6902) on a pod template, {metadata, spec}. Pure. Each step is applied as it is
// made by fast-json-patch, the library the webhook's tests check against too, so what inject returns is exactly
// what its patch does to the input: the webhook sends the patch, the CLI lays it onto the YAML it read.
// Nothing the user wrote is changed: ours is only added (and listed in the status annotation), so uninject takes
// exactly that away again and gives back the original.

import { createHash } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import fastJsonPatch, { type Operation } from 'fast-json-patch'
import {
  findEscapeCapabilities,
  type Finding,
  layoutWarnings,
  type Refusal,
  refuseMethod,
  refuseProxyIdentity,
  refuseReservedNames,
  refuseTemplate,
  type UserContainer,
} from './checks.js'
import {
  captureContainer,
  chooseLayout,
  holdContainer,
  isReservedName,
  type Json,
  type JsonObject,
  type Layout,
  needsHoldContainer,
  proxyContainer,
  proxyVolumes,
} from './containers.js'
import {
  CNI_CAPTURE_ANNOTATION,
  INJECT_ANNOTATION,
  INJECT_LABEL,
  resolveSettings,
  type SettingsSource,
  STATUS_ANNOTATION,
  annotationField,
} from './settings.js'
import { VERSION } from '../settings/inject-options.js'

const { applyOperation, deepClone, escapePathComponent } = fastJsonPatch

export type { Operation }

/** What inject and uninject return: the new template and the patch from the old, or why nothing was done. */
export type Outcome =
  | {
      readonly kind: 'injected' | 'uninjected' | 'unchanged'
      readonly template: JsonObject
      /** The patch from the input to `template`; empty when unchanged. */
      readonly ops: readonly Operation[]
      readonly warnings: readonly Finding[]
      readonly layout?: Layout
    }
  | {
      readonly kind: 'skipped'
      readonly template: JsonObject
      readonly ops: readonly []
      readonly warnings: readonly Finding[]
      readonly reason: string
    }
  | { readonly kind: 'refused'; readonly refusals: readonly Refusal[]; readonly warnings: readonly Finding[] }

/** Where the template sits: its object's namespace, and the path to it for messages (`spec.template.`). */
export interface Place {
  readonly namespace: string | undefined
  readonly at: string
}

/** What injection added, in the status annotation: enough for uninject to take exactly that away. */
interface Status {
  readonly version: string
  /** A digest of what was added: the same settings inject the same, and a re-run is a no-op. */
  readonly digest: string
  readonly initContainers: readonly string[]
  readonly containers: readonly string[]
  readonly volumes: readonly string[]
  /** Annotations added besides the status. */
  readonly annotations: readonly string[]
  /** Parents injection created (JSON pointers), removed again when uninject leaves them empty. */
  readonly created: readonly string[]
}

const CREATABLE = ['/metadata', '/metadata/annotations', '/spec/initContainers', '/spec/volumes'] as const
const OWN_ANNOTATIONS = [CNI_CAPTURE_ANNOTATION]

const isObject = (value: unknown): value is Record<string, Json> => typeof value === 'object' && value !== null && !Array.isArray(value)
const isStringList = (value: unknown): value is string[] => Array.isArray(value) && value.every(v => typeof v === 'string')

/** Applies each operation as it is made, so the next decision sees the template as the patch leaves it. */
class Editor {
  readonly ops: Operation[] = []
  doc: Record<string, Json>
  constructor(template: JsonObject) {
    this.doc = deepClone(template) as Record<string, Json>
  }
  get(pointer: string): Json | undefined {
    let node: Json | undefined = this.doc
    for (const part of pointer.split('/').slice(1)) {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~')
      node = Array.isArray(node) ? node[Number(key)] : isObject(node) ? node[key] : undefined
    }
    return node
  }
  apply(op: Operation): void {
    this.doc = applyOperation(this.doc, op, true, true, true).newDocument as Record<string, Json>
    this.ops.push(op)
  }
  /** Adds `key: value` to the object at `parent`, creating the parents it lacks; returns the pointers it created. */
  addKey(parent: string, key: string, value: Json): string[] {
    const created: string[] = []
    const parts = parent.split('/').slice(1)
    for (let i = 1; i <= parts.length; i++) {
      const pointer = `/${parts.slice(0, i).join('/')}`
      if (this.get(pointer) === undefined) {
        this.apply({ op: 'add', path: pointer, value: {} })
        created.push(pointer)
      }
    }
    this.apply({ op: 'add', path: `${parent}/${escapePathComponent(key)}`, value })
    return created
  }
  /** Inserts `items` into the list at `pointer` at `index` (or its end), creating the list if absent. */
  insert(pointer: string, index: number | 'end', items: readonly JsonObject[]): string[] {
    if (items.length === 0) return []
    if (this.get(pointer) === undefined) {
      this.apply({ op: 'add', path: pointer, value: [...items] })
      return [pointer]
    }
    for (const [i, item] of items.entries()) this.apply({ op: 'add', path: `${pointer}/${index === 'end' ? '-' : index + i}`, value: item })
    return []
  }
}

/** The template's shape, checked as far as injection reads it; a refusal names the first field that is wrong. */
const malformed = (template: unknown, at: string): Refusal | undefined => {
  const refuse = (field: string, expected: string): Refusal => ({ kind: 'malformed', field: `${at}${field}`, message: `is not ${expected}` })
  if (!isObject(template)) return refuse('', 'a pod template (an object with metadata and spec)')
  const { metadata, spec } = template
  if (metadata !== undefined && !isObject(metadata)) return refuse('metadata', 'an object')
  for (const key of ['annotations', 'labels'] as const) {
    const map = isObject(metadata) ? metadata[key] : undefined
    if (map !== undefined && !(isObject(map) && Object.values(map).every(v => typeof v === 'string')))
      return refuse(`metadata.${key}`, 'a map of strings')
  }
  if (!isObject(spec)) return refuse('spec', 'an object (the pod spec)')
  if (!Array.isArray(spec['containers']) || spec['containers'].length === 0) return refuse('spec.containers', 'a list of at least one container')
  for (const list of ['initContainers', 'containers', 'volumes'] as const) {
    const items = spec[list]
    if (items === undefined) continue
    if (!Array.isArray(items)) return refuse(`spec.${list}`, 'a list')
    const bad = items.findIndex(item => !isObject(item) || typeof item['name'] !== 'string')
    if (bad >= 0) return refuse(`spec.${list}[${bad}]`, 'an object with a name')
  }
  if (spec['securityContext'] !== undefined && !isObject(spec['securityContext'])) return refuse('spec.securityContext', 'an object')
  return undefined
}

const listOf = (spec: Record<string, Json>, key: string): JsonObject[] => (Array.isArray(spec[key]) ? (spec[key] as JsonObject[]) : [])

const userContainers = (spec: Record<string, Json>, at: string): UserContainer[] =>
  (['initContainers', 'containers'] as const).flatMap(list =>
    listOf(spec, list).map((container, i) => ({ field: `${at}spec.${list}[${i}]`, container })),
  )

const mapOf = (template: JsonObject, key: 'annotations' | 'labels'): Record<string, string> => {
  const metadata = template['metadata']
  return isObject(metadata) && isObject(metadata[key]) ? (metadata[key] as Record<string, string>) : {}
}
const annotationsOf = (template: JsonObject) => mapOf(template, 'annotations')
const labelsOf = (template: JsonObject) => mapOf(template, 'labels')

const STATUS_KEYS = ['version', 'digest', 'initContainers', 'containers', 'volumes', 'annotations', 'created'] as const

/** Reads the status annotation; undefined when absent; a refusal when it is not one injection wrote. */
const readStatus = (template: JsonObject, at: string): Status | undefined | Refusal => {
  const text = annotationsOf(template)[STATUS_ANNOTATION]
  if (text === undefined) return undefined
  const refusal: Refusal = {
    kind: 'malformed',
    field: `${at}${annotationField(STATUS_ANNOTATION)}`,
    message:
      'is not the status injection writes (it lists what injection added, so uninject can take exactly that away): remove it, or the containers, volumes and annotations it was written with',
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return refusal
  }
  if (!isObject(value) || typeof value['version'] !== 'string' || typeof value['digest'] !== 'string') return refusal
  const lists = STATUS_KEYS.slice(2).map(key => value[key])
  if (!lists.every(isStringList)) return refusal
  const [initContainers, containers, volumes, annotations, created] = lists as string[][]
  // Only our names, annotations and parents: a status cannot make uninject remove what the user wrote.
  if (![...initContainers!, ...containers!, ...volumes!].every(isReservedName)) return refusal
  if (!annotations!.every(a => OWN_ANNOTATIONS.includes(a)) || !created!.every(c => (CREATABLE as readonly string[]).includes(c))) return refusal
  return {
    version: value['version'],
    digest: value['digest'],
    initContainers: initContainers!,
    containers: containers!,
    volumes: volumes!,
    annotations: annotations!,
    created: created!,
  }
}

const isRefusal = (value: Status | Refusal | undefined): value is Refusal => value !== undefined && 'kind' in value

/** Removes what the status lists from the editor's template, and the status itself. */
const removeOurs = (editor: Editor, status: Status): void => {
  for (const [list, names] of [
    ['initContainers', status.initContainers],
    ['containers', status.containers],
    ['volumes', status.volumes],
  ] as const) {
    const items = editor.get(`/spec/${list}`)
    if (!Array.isArray(items)) continue
    const indexes = items.flatMap((item, i) => (isObject(item) && names.includes(item['name'] as string) ? [i] : [])).reverse()
    for (const i of indexes) editor.apply({ op: 'remove', path: `/spec/${list}/${i}` })
  }
  const annotations = editor.get('/metadata/annotations')
  for (const key of [...status.annotations, STATUS_ANNOTATION]) {
    if (isObject(annotations) && key in annotations) editor.apply({ op: 'remove', path: `/metadata/annotations/${escapePathComponent(key)}` })
  }
  // Deepest first, so /metadata goes only once /metadata/annotations has.
  for (const pointer of [...status.created].sort((a, b) => b.length - a.length)) {
    const value = editor.get(pointer)
    if (value !== undefined && (Array.isArray(value) ? value.length === 0 : isObject(value) && Object.keys(value).length === 0)) {
      editor.apply({ op: 'remove', path: pointer })
    }
  }
}

/**
 * uninject takes away what inject added, as its status annotation lists, and nothing else: uninject(inject(t))
 * is t. A template without the status is returned unchanged. Pure.
 */
export const uninject = (template: JsonObject, place: Place = { namespace: undefined, at: '' }): Outcome => {
  const bad = malformed(template, place.at)
  if (bad) return { kind: 'refused', refusals: [bad], warnings: [] }
  const status = readStatus(template, place.at)
  if (isRefusal(status)) return { kind: 'refused', refusals: [status], warnings: [] }
  if (status === undefined) return { kind: 'unchanged', template, ops: [], warnings: [] }
  const editor = new Editor(template)
  removeOurs(editor, status)
  return { kind: 'uninjected', template: editor.doc, ops: editor.ops, warnings: [] }
}

const digestOf = (value: unknown): string => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16)

/**
 * inject adds the capture (init or validate) container and the proxy, as the settings and the template's own
 * annotations say, or refuses naming the field. Injecting an injected template with the same settings changes
 * nothing; with other settings, ours is replaced. Pure.
 */
export const inject = (template: JsonObject, source: SettingsSource, place: Place = { namespace: undefined, at: '' }): Outcome => {
  const { at } = place
  const bad = malformed(template, at)
  if (bad) return { kind: 'refused', refusals: [bad], warnings: [] }
  const annotations = annotationsOf(template)
  const choice = annotations[INJECT_ANNOTATION]
  if (choice === 'disabled')
    return { kind: 'skipped', template, ops: [], warnings: [], reason: `${at}${annotationField(INJECT_ANNOTATION)} is disabled` }
  // The label the webhook's object selector reads: a pod it would never be sent is not injected here either.
  if (labelsOf(template)[INJECT_LABEL] === 'disabled') {
    return { kind: 'skipped', template, ops: [], warnings: [], reason: `${at}metadata.labels[${JSON.stringify(INJECT_LABEL)}] is disabled` }
  }
  if (choice !== undefined && choice !== 'enabled') {
    return {
      kind: 'refused',
      refusals: [
        {
          kind: 'annotation',
          field: `${at}${annotationField(INJECT_ANNOTATION)}`,
          message: `is ${JSON.stringify(choice)}: expected enabled or disabled`,
        },
      ],
      warnings: [],
    }
  }
  const status = readStatus(template, at)
  if (isRefusal(status)) return { kind: 'refused', refusals: [status], warnings: [] }
  // Decide on the template as the user wrote it: without what an earlier injection added.
  const base = new Editor(template)
  if (status) removeOurs(base, status)
  const user = base.doc
  const spec = user['spec'] as Record<string, Json>
  const resolved = resolveSettings(source, annotationsOf(user))
  const refusals: Refusal[] = [
    ...refuseTemplate(user, place.namespace, at),
    ...refuseReservedNames(
      userContainers(spec, at),
      listOf(spec, 'volumes').map((container, i) => ({ field: `${at}spec.volumes[${i}]`, container })),
    ),
  ]
  if (!resolved.ok) refusals.push({ kind: 'annotation', field: `${at}${resolved.field}`, message: resolved.message })
  if (refusals.length > 0 || !resolved.ok) return { kind: 'refused', refusals, warnings: [] }
  const e = resolved.effective
  const layout = chooseLayout(e.inject)
  const containers = userContainers(spec, at)
  const escapes = findEscapeCapabilities(containers)
  const podContext = isObject(spec['securityContext']) ? spec['securityContext'] : {}
  refusals.push(...refuseMethod(e, at), ...refuseProxyIdentity(e, containers, podContext, at))
  const cniCapture = annotationsOf(user)[CNI_CAPTURE_ANNOTATION]
  if (e.inject.mode === 'cni' && cniCapture !== undefined && cniCapture !== 'enabled') {
    refusals.push({
      kind: 'annotation',
      field: `${at}${annotationField(CNI_CAPTURE_ANNOTATION)}`,
      message: `is ${JSON.stringify(cniCapture)}: it asks the node's CNI plugin not to capture the pod, while injection in mode cni gives it a proxy and a validate container that would fail`,
    })
  }
  if (e.inject.appCapabilities === 'refuse') {
    refusals.push(
      ...escapes.map(f => ({ kind: 'app-capabilities' as const, field: f.field, message: `${f.message} (ISTIO_INJECT_APP_CAPABILITIES=refuse)` })),
    )
  }
  const warnings = [...(e.inject.appCapabilities === 'warn' ? escapes : []), ...layoutWarnings(layout, spec, at)]
  if (refusals.length > 0) return { kind: 'refused', refusals, warnings }

  const first = captureContainer(e)
  const proxy = proxyContainer(e, layout)
  const hold = needsHoldContainer(e, layout) ? [holdContainer(e)] : []
  const volumes = proxyVolumes(e)
  const added = {
    initContainers: layout === 'native' ? [first, proxy] : [first],
    containers: layout === 'native' ? [] : [proxy, ...hold],
    volumes,
    annotations: e.inject.mode === 'cni' && cniCapture === undefined ? { [CNI_CAPTURE_ANNOTATION]: 'enabled' } : {},
  }
  const digest = digestOf({ layout, ...added })
  // Already injected with these settings, and ours still there: nothing to do (the API server may have filled in
  // defaults in our containers meanwhile; that is no reason to rewrite them).
  const present = (list: string, names: readonly string[]) =>
    names.every(name => listOf(template['spec'] as Record<string, Json>, list).some(c => c['name'] === name))
  if (status?.digest === digest && present('initContainers', status.initContainers) && present('containers', status.containers)) {
    return { kind: 'unchanged', template, ops: [], warnings, layout }
  }

  const editor = new Editor(template)
  if (status) removeOurs(editor, status)
  const created = [
    ...editor.insert('/spec/initContainers', layout === 'native' ? 0 : 'end', added.initContainers),
    ...editor.insert('/spec/containers', 0, added.containers),
    ...editor.insert('/spec/volumes', 'end', added.volumes),
  ]
  for (const [key, value] of Object.entries(added.annotations)) created.push(...editor.addKey('/metadata/annotations', key, value))
  const record: Omit<Status, 'created'> = {
    version: VERSION,
    digest,
    initContainers: added.initContainers.map(c => c['name'] as string),
    containers: added.containers.map(c => c['name'] as string),
    volumes: added.volumes.map(v => v['name'] as string),
    annotations: Object.keys(added.annotations),
  }
  // The status lists the parents its own addition creates too.
  created.push(...(['/metadata', '/metadata/annotations'] as const).filter(pointer => editor.get(pointer) === undefined))
  editor.addKey('/metadata/annotations', STATUS_ANNOTATION, JSON.stringify({ ...record, created }))
  if (isDeepStrictEqual(editor.doc, template)) return { kind: 'unchanged', template, ops: [], warnings, layout }
  return { kind: 'injected', template: editor.doc, ops: editor.ops, warnings, layout }
}
