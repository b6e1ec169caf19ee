// Where a Kubernetes object keeps its pod template, and injection of whole objects: every kind with a pod
// template, and Lists of them; any other object is left as it is. Pure: the patch of each template is moved under
// the template's place in its object, so one patch changes the whole object, as the CLI and the webhook need.

import fastJsonPatch from 'fast-json-patch'
import type { Finding, Refusal } from './checks.js'
import type { Json, JsonObject } from './containers.js'
import { inject, type Operation, type Outcome, uninject } from './inject.js'
import type { SettingsSource } from './settings.js'

const { applyPatch, deepClone } = fastJsonPatch

// Kind, the API groups that serve it, and the path from the object to its pod template ([] is the Pod itself).
const TEMPLATES: Readonly<Record<string, { readonly groups: readonly string[]; readonly path: readonly string[] }>> = {
  Pod: { groups: [''], path: [] },
  PodTemplate: { groups: [''], path: ['template'] },
  ReplicationController: { groups: [''], path: ['spec', 'template'] },
  Deployment: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  StatefulSet: { groups: ['apps'], path: ['spec', 'template'] },
  DaemonSet: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  ReplicaSet: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  Job: { groups: ['batch'], path: ['spec', 'template'] },
  CronJob: { groups: ['batch'], path: ['spec', 'jobTemplate', 'spec', 'template'] },
}

/** The workload kinds injection reads a pod template from. */
export const WORKLOAD_KINDS: readonly string[] = Object.keys(TEMPLATES)

const isObject = (value: unknown): value is Record<string, Json> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** One pod template inside an object: where it is (a JSON pointer and a field path for messages) and whose. */
export interface Site {
  readonly pointer: string
  readonly at: string
  /** Kind namespace/name, as messages name the object. */
  readonly label: string
  readonly namespace: string | undefined
  readonly template: JsonObject
}

const labelOf = (object: Record<string, Json>, kind: string): string => {
  const metadata = isObject(object['metadata']) ? object['metadata'] : {}
  const name =
    typeof metadata['name'] === 'string'
      ? metadata['name']
      : typeof metadata['generateName'] === 'string'
        ? `${metadata['generateName']}*`
        : '(no name)'
  return `${kind} ${typeof metadata['namespace'] === 'string' ? `${metadata['namespace']}/` : ''}${name}`
}

/** findSites lists the pod templates in an object, and in a List's items; [] for any other object. Pure. */
export const findSites = (object: unknown, pointer = '', at = ''): Site[] => {
  if (!isObject(object) || typeof object['kind'] !== 'string') return []
  const kind = object['kind']
  if (kind.endsWith('List') && Array.isArray(object['items'])) {
    return object['items'].flatMap((item, i) => findSites(item, `${pointer}/items/${i}`, `${at}items[${i}].`))
  }
  const known = TEMPLATES[kind]
  const group = typeof object['apiVersion'] === 'string' && object['apiVersion'].includes('/') ? object['apiVersion'].split('/')[0] : ''
  if (known === undefined || !known.groups.includes(group!)) return []
  const metadata = isObject(object['metadata']) ? object['metadata'] : {}
  const namespace = typeof metadata['namespace'] === 'string' ? metadata['namespace'] : undefined
  const label = `${at === '' ? '' : `${at.slice(0, -1)}: `}${labelOf(object, kind)}`
  if (known.path.length === 0) {
    // A Pod is its own template: its metadata and spec, at the object's root.
    const template = {
      ...(object['metadata'] !== undefined && { metadata: object['metadata'] }),
      ...(object['spec'] !== undefined && { spec: object['spec'] }),
    }
    return [{ pointer, at, label, namespace, template }]
  }
  let node: Json | undefined = object
  for (const key of known.path) node = isObject(node) ? node[key] : undefined
  return [
    { pointer: `${pointer}/${known.path.join('/')}`, at: `${at}${known.path.join('.')}.`, label, namespace, template: (node ?? null) as JsonObject },
  ]
}

export interface SiteResult {
  readonly site: Site
  readonly outcome: Outcome
}

/** What injecting (or uninjecting) a whole object gives: the object, its patch, and what happened per template. */
export interface ObjectResult {
  readonly object: Json
  readonly ops: readonly Operation[]
  readonly results: readonly SiteResult[]
  readonly refusals: readonly (Refusal & { readonly label: string })[]
  readonly warnings: readonly (Finding & { readonly label: string })[]
}

/**
 * transformObject injects (or uninjects) every pod template of an object. When any template is refused, the
 * object is returned as it was, with no patch, and the refusals. Pure.
 */
export const transformObject = (object: Json, action: 'inject' | 'uninject', source: SettingsSource, namespace?: string): ObjectResult => {
  const results = findSites(object).map(site => {
    const place = { namespace: site.namespace ?? namespace, at: site.at }
    return { site, outcome: action === 'inject' ? inject(site.template, source, place) : uninject(site.template, place) }
  })
  const refusals = results.flatMap(({ site, outcome }) =>
    outcome.kind === 'refused' ? outcome.refusals.map(r => ({ ...r, label: site.label })) : [],
  )
  const warnings = results.flatMap(({ site, outcome }) => outcome.warnings.map(w => ({ ...w, label: site.label })))
  if (refusals.length > 0) return { object, ops: [], results, refusals, warnings }
  const ops = results.flatMap(({ site, outcome }) =>
    outcome.kind === 'refused' ? [] : outcome.ops.map(op => ({ ...op, path: `${site.pointer}${op.path}` })),
  )
  const changed = ops.length === 0 ? object : (applyPatch(deepClone(object), ops as Operation[], true, true, true).newDocument as Json)
  return { object: changed, ops, results, refusals, warnings }
}
