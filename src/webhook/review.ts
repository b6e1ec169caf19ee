// One AdmissionReview (admission.k8s.io/v1) in, its response out, and the log line that records the decision.
// Pure. The patch is injection's own (src/inject), so the webhook and `entrypoint inject` cannot disagree.
// kube-system and our own pods are let through untouched, whatever selected them; any other refusal denies the
// pod, naming the field, since creating it without the capture its namespace asked for would be a silent hole.

import type { Json } from '../inject/containers.js'
import { INJECT_ANNOTATION, INJECT_LABEL, type SettingsSource } from '../inject/settings.js'
import { transformObject } from '../inject/workloads.js'

/** What the webhook answers one request with: an HTTP status, the body, and the fields of its log line. */
export interface Answer {
  readonly status: number
  readonly body: string
  readonly log: Readonly<Record<string, unknown>>
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

// The API server shows warnings to the user as they are; it may cut those over 256 characters.
const MAX_WARNINGS = 10
const MAX_WARNING = 256
const clip = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

const badRequest = (message: string): Answer => ({ status: 400, body: `${message}\n`, log: { decision: 'bad-request', reason: message } })

/** A pod's own opt-in: the label the API server's object selector can read, or the annotation, which it cannot. */
const optsIn = (metadata: Record<string, unknown>): boolean =>
  (isObject(metadata['labels']) && metadata['labels'][INJECT_LABEL] === 'enabled') ||
  (isObject(metadata['annotations']) && metadata['annotations'][INJECT_ANNOTATION] === 'enabled')

/**
 * reviewAdmission answers an AdmissionReview's JSON text; with `requireOptIn` (pods outside opted-in namespaces)
 * only a pod that opts in itself is injected. Never throws on any input.
 */
export const reviewAdmission = (text: string, source: SettingsSource, options: { requireOptIn?: boolean } = {}): Answer => {
  let review: unknown
  try {
    review = JSON.parse(text)
  } catch {
    return badRequest('the body is not JSON')
  }
  if (!isObject(review) || review['apiVersion'] !== 'admission.k8s.io/v1' || review['kind'] !== 'AdmissionReview') {
    return badRequest('the body is not an AdmissionReview of admission.k8s.io/v1')
  }
  const request = review['request']
  if (!isObject(request) || typeof request['uid'] !== 'string' || request['uid'] === '') return badRequest('the AdmissionReview has no request.uid')
  const uid = request['uid']
  const namespace = typeof request['namespace'] === 'string' ? request['namespace'] : undefined
  const object = isObject(request['object']) ? request['object'] : undefined
  const metadata = isObject(object?.['metadata']) ? object['metadata'] : {}
  const name = typeof metadata['name'] === 'string' && metadata['name'] !== '' ? metadata['name'] : `${String(metadata['generateName'] ?? '')}*`
  const kind = isObject(request['kind']) ? request['kind'] : {}
  const fields = { uid, namespace, pod: name, operation: request['operation'] }
  const respond = (response: Record<string, unknown>, log: Record<string, unknown>): Answer => ({
    status: 200,
    body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, ...response } }),
    log: { ...fields, ...log },
  })
  if (
    kind['group'] !== '' ||
    kind['kind'] !== 'Pod' ||
    request['operation'] !== 'CREATE' ||
    object === undefined ||
    request['subResource'] !== undefined
  ) {
    return respond({ allowed: true }, { decision: 'ignored', reason: 'not the creation of a Pod' })
  }
  if (namespace === 'kube-system') return respond({ allowed: true }, { decision: 'skipped', reason: 'kube-system is never injected' })
  if (options.requireOptIn && !optsIn(metadata)) {
    return respond(
      { allowed: true },
      { decision: 'skipped', reason: `neither its namespace nor the pod opts in (${INJECT_LABEL} or ${INJECT_ANNOTATION})` },
    )
  }
  let result: ReturnType<typeof transformObject>
  try {
    result = transformObject({ ...object, apiVersion: 'v1', kind: 'Pod' } as Json, 'inject', source, namespace)
  } catch (error) {
    // A bug, not the pod's fault: answered as an error, so the API server applies the failure policy.
    return {
      status: 500,
      body: 'injection failed\n',
      log: { ...fields, decision: 'error', reason: error instanceof Error ? error.message : String(error) },
    }
  }
  const [outcome] = result.results.map(r => r.outcome)
  const warnings = result.warnings.slice(0, MAX_WARNINGS).map(w => clip(`${w.field} ${w.message}`, MAX_WARNING))
  const warned = warnings.length > 0 ? { warnings } : {}
  if (result.refusals.length > 0) {
    const untouchable = result.refusals.find(r => r.kind === 'kube-system' || r.kind === 'itself')
    if (untouchable) return respond({ allowed: true }, { decision: 'skipped', reason: `${untouchable.field} ${untouchable.message}` })
    const message = `sidecar-redirect refused to inject this pod: ${result.refusals.map(r => `${r.field} ${r.message}`).join('; ')}`
    return respond(
      { allowed: false, status: { code: 403, reason: 'Forbidden', message }, ...warned },
      { decision: 'refused', refusals: result.refusals.map(r => ({ kind: r.kind, field: r.field })) },
    )
  }
  if (outcome?.kind === 'skipped') return respond({ allowed: true, ...warned }, { decision: 'skipped', reason: outcome.reason })
  if (result.ops.length === 0) return respond({ allowed: true, ...warned }, { decision: 'unchanged', warnings: warnings.length })
  return respond(
    { allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(result.ops)).toString('base64'), ...warned },
    { decision: 'injected', layout: outcome && 'layout' in outcome ? outcome.layout : undefined, ops: result.ops.length, warnings: warnings.length },
  )
}
