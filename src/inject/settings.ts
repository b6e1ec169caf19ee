// The settings one pod template is injected with: the operator's (env and flags), then the pod's own annotations
// for the settings the operator's allow-list names. Pure: the same parsers as the env, so an annotation is refused
// exactly as the variable would be, but named as the annotation.

import { ConfigError } from '../errors.js'
import { annotatableFlags, CAPTURE_ANNOTATION_PREFIX, INJECT_ANNOTATION_PREFIX, INJECT_OPTIONS } from '../settings/inject-options.js'
import { OPTIONS, type OptionSpec } from '../settings/options.js'
import { type Env, type Flags, parseAgentSettings, parseInjectSettings, parseSettings } from '../settings/parse.js'
import type { AgentSettings, InjectSettings, Settings } from '../settings/types.js'

/** Where the operator's settings come from: the injector's own environment and command line. */
export interface SettingsSource {
  readonly env: Env
  readonly flags: Flags
}

/** Everything that decides what is injected into one template. */
export interface Effective {
  readonly capture: Settings
  readonly inject: InjectSettings
  readonly agent: AgentSettings
}

/** The annotation that opts a pod in or out (`enabled` or `disabled`), and the one injection writes. */
export const INJECT_ANNOTATION = `${INJECT_ANNOTATION_PREFIX}inject`
export const STATUS_ANNOTATION = `${INJECT_ANNOTATION_PREFIX}status`
/** The label the webhook's selectors read, on namespaces and pods: `enabled` or `disabled`. */
export const INJECT_LABEL = `${CAPTURE_ANNOTATION_PREFIX}inject`
/** The CNI plugin's opt-in, which CNI mode adds. */
export const CNI_CAPTURE_ANNOTATION = `${CAPTURE_ANNOTATION_PREFIX}capture`

const OWN_KEYS = new Set([INJECT_ANNOTATION, STATUS_ANNOTATION, CNI_CAPTURE_ANNOTATION])

const specsByFlag = new Map<string, OptionSpec<unknown> & { key: string }>(
  [...Object.entries(OPTIONS), ...Object.entries(INJECT_OPTIONS)].map(([key, spec]) => [spec.flag, { ...spec, key }]),
)

/** A field of the template, named as a reader finds it: metadata.annotations["sidecar-redirect.io/proxy-port"]. */
export const annotationField = (key: string): string => `metadata.annotations[${JSON.stringify(key)}]`

export type Resolved = { readonly ok: true; readonly effective: Effective } | { readonly ok: false; readonly field: string; readonly message: string }

/**
 * resolveSettings parses the operator's settings with the template's setting annotations laid over them. An
 * annotation under our prefixes that names no setting, or one the allow-list (ISTIO_INJECT_ANNOTATIONS) does not
 * name, is refused; so is a value the setting's parser refuses. Pure.
 */
export const resolveSettings = (source: SettingsSource, annotations: Readonly<Record<string, string>>): Resolved => {
  const base = parseInjectSettings(source.env, source.flags)
  const allowed = new Set(base.annotations)
  const annotatable = annotatableFlags()
  const env: Record<string, string | undefined> = { ...source.env }
  const flags: Record<string, string | undefined> = { ...source.flags }
  const byVariable = new Map<string, string>()
  for (const [key, value] of Object.entries(annotations)) {
    const prefix = [CAPTURE_ANNOTATION_PREFIX, INJECT_ANNOTATION_PREFIX].find(p => key.startsWith(p))
    if (prefix === undefined || OWN_KEYS.has(key)) continue
    const flag = key.slice(prefix.length)
    const kind = annotatable.get(flag)
    const spec = specsByFlag.get(flag)
    if (spec === undefined || kind === undefined || (kind === 'capture') !== (prefix === CAPTURE_ANNOTATION_PREFIX)) {
      return {
        ok: false,
        field: annotationField(key),
        message: `names no setting a pod may set: expected ${CAPTURE_ANNOTATION_PREFIX}<flag> for a capture setting or ${INJECT_ANNOTATION_PREFIX}<flag> for one of the injector's (e.g. ${CAPTURE_ANNOTATION_PREFIX}outbound-exclude-ports, ${INJECT_ANNOTATION_PREFIX}proxy-image)`,
      }
    }
    if (!allowed.has(flag)) {
      return {
        ok: false,
        field: annotationField(key),
        message: `sets ${spec.env}, which the operator does not let pods set: ISTIO_INJECT_ANNOTATIONS lists ${base.annotations.join(', ') || 'nothing'}`,
      }
    }
    env[spec.env] = value
    delete flags[spec.key]
    byVariable.set(spec.env, key)
  }
  try {
    return {
      ok: true,
      effective: { capture: parseSettings(env, flags), inject: parseInjectSettings(env, flags), agent: parseAgentSettings(env, flags) },
    }
  } catch (error) {
    const annotation = error instanceof ConfigError ? byVariable.get(error.variable) : undefined
    if (error instanceof ConfigError && annotation !== undefined) {
      return { ok: false, field: annotationField(annotation), message: `${JSON.stringify(error.value)} is not valid: expected ${error.accepted}` }
    }
    throw error
  }
}
