// Where each capture setting lives in the Helm chart's values, and the form its value takes there. A mapped type
// over the settings table, so a new setting does not compile until it has a value here. scripts/chart-gen.mjs
// writes the chart's env template and the schema's entries for these values from it; the chart tests check the
// result is committed, that values.yaml holds the table's defaults, and that the schema and the CLI agree.

import { annotatableFlags, INJECT_OPTIONS, IMAGE, WEBHOOK_OPTIONS } from './inject-options.js'
import { AGENT_OPTIONS, allowableAnnotations, CNI_INSTALL_OPTIONS, NAMESPACE, NODE_AGENT_OPTIONS, OPTIONS, type OptionSpec } from './options.js'
import type { OptionSettings } from './types.js'

/**
 * What the schema checks of one value; the rest is the CLI's to decide (the init, validate and installer
 * containers refuse a bad value in one line naming the variable). Integers and choices are checked by the schema
 * too, as their exact bounds and lists, which a test compares with what the table's parser accepts; text (CIDRs,
 * marks, ports lists) is checked by the CLI alone, so no second set of patterns can disagree with it.
 */
export type ChartForm =
  | { readonly kind: 'integer'; readonly min: number; readonly max: number; readonly nullable?: true; readonly except?: readonly number[] }
  | { readonly kind: 'choice'; readonly choices: readonly string[] }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'text' }
  /** A list of strings or integers, joined with commas into the variable; each item matching `items`, if given. */
  | { readonly kind: 'list'; readonly items?: RegExp }
  /** A string the table's own expression matches (or empty, where empty means none). */
  | { readonly kind: 'pattern'; readonly regex: RegExp; readonly empty?: true }

export interface ChartValue {
  /** The value's path in values.yaml, dotted. */
  readonly path: string
  readonly form: ChartForm
}

const UINT32 = 4294967295

export const CHART_VALUES: { readonly [K in keyof OptionSettings]: ChartValue } = {
  proxyPort: { path: 'proxy.port', form: { kind: 'integer', min: 1, max: 65535 } },
  proxyUid: { path: 'proxy.uid', form: { kind: 'integer', min: 1, max: UINT32 - 1 } },
  proxyGid: { path: 'proxy.gid', form: { kind: 'integer', min: 1, max: UINT32 - 1, nullable: true } },
  outboundMethod: { path: 'method', form: { kind: 'choice', choices: ['uid', 'mark', 'cgroup', 'explicit'] } },
  mark: { path: 'mark', form: { kind: 'text' } },
  netClsId: { path: 'netClsId', form: { kind: 'text' } },
  inboundPorts: { path: 'inbound.ports', form: { kind: 'list' } },
  inboundExcludePorts: { path: 'inbound.excludePorts', form: { kind: 'list' } },
  inboundCapturePort: { path: 'inbound.capturePort', form: { kind: 'integer', min: 1, max: 65535, nullable: true } },
  inboundInterceptionMode: { path: 'inbound.interceptionMode', form: { kind: 'choice', choices: ['REDIRECT', 'TPROXY'] } },
  inboundTproxyMark: { path: 'inbound.tproxyMark', form: { kind: 'integer', min: 1, max: UINT32 } },
  inboundTproxyRouteTable: { path: 'inbound.tproxyRouteTable', form: { kind: 'integer', min: 1, max: UINT32, except: [253, 254, 255] } },
  outboundExcludePorts: { path: 'outbound.excludePorts', form: { kind: 'list' } },
  outboundIncludeCidrs: { path: 'outbound.includeCidrs', form: { kind: 'list' } },
  outboundExcludeCidrs: { path: 'outbound.excludeCidrs', form: { kind: 'list' } },
  excludeInterfaces: { path: 'excludeInterfaces', form: { kind: 'list' } },
  excludeInterfacesScope: { path: 'excludeInterfacesScope', form: { kind: 'choice', choices: ['routes', 'all'] } },
  dnsCapture: { path: 'dns.capture', form: { kind: 'choice', choices: ['off', 'resolv-conf', 'all'] } },
  dnsPort: { path: 'dns.port', form: { kind: 'integer', min: 1, max: 65535 } },
  resolvConf: { path: 'dns.resolvConf', form: { kind: 'text' } },
  dnsServers: { path: 'dns.servers', form: { kind: 'list' } },
  services: { path: 'services', form: { kind: 'list' } },
  servicesFile: { path: 'servicesFile', form: { kind: 'text' } },
  backend: { path: 'backend', form: { kind: 'choice', choices: ['auto', 'iptables-nft', 'iptables-legacy', 'nftables'] } },
  ipv6: { path: 'ipv6', form: { kind: 'choice', choices: ['auto', 'true', 'false'] } },
  verify: { path: 'verify', form: { kind: 'choice', choices: ['rules', 'live'] } },
  acceptBpfPrograms: { path: 'acceptBpfPrograms', form: { kind: 'list' } },
  logFormat: { path: 'logFormat', form: { kind: 'choice', choices: ['text', 'json'] } },
  execTimeout: { path: 'execTimeoutSeconds', form: { kind: 'integer', min: 1, max: 3600 } },
  strictEnv: { path: 'strictEnv', form: { kind: 'boolean' } },
}

/** A value of the chart for a setting of another part's table, which the templates write into its container. */
export interface PartValue extends ChartValue {
  readonly spec: OptionSpec<unknown>
  /** The variable's text for a value, where the template does more than write the value. */
  readonly text?: (value: unknown) => string
}

/** The other parts' values that carry one setting each, checked against its row's parser as the capture values are. */
export const PART_VALUES: readonly PartValue[] = [
  { path: 'proxy.restart', spec: AGENT_OPTIONS.restart, form: { kind: 'choice', choices: ['no', 'on-failure'] } },
  { path: 'proxy.drainSeconds', spec: AGENT_OPTIONS.drainSeconds, form: { kind: 'integer', min: 0, max: 3600 } },
  { path: 'proxy.readyTimeoutSeconds', spec: AGENT_OPTIONS.readySeconds, form: { kind: 'integer', min: 0, max: 3600 } },
  { path: 'proxy.image', spec: INJECT_OPTIONS.proxyImage, form: { kind: 'pattern', regex: IMAGE, empty: true } },
  { path: 'webhook.appCapabilities', spec: INJECT_OPTIONS.appCapabilities, form: { kind: 'choice', choices: ['warn', 'refuse'] } },
  { path: 'webhook.timeoutSeconds', spec: WEBHOOK_OPTIONS.requestSeconds, form: { kind: 'integer', min: 1, max: 30 } },
  { path: 'webhook.certCheckSeconds', spec: WEBHOOK_OPTIONS.certCheckSeconds, form: { kind: 'integer', min: 1, max: 3600 } },
  { path: 'webhook.maxRequestBytes', spec: WEBHOOK_OPTIONS.maxBytes, form: { kind: 'integer', min: 1024, max: 64 * 1024 * 1024 } },
  { path: 'webhook.excludeNamespaces', spec: CNI_INSTALL_OPTIONS.excludeNamespaces, form: { kind: 'list', items: NAMESPACE } },
  { path: 'cni.checkSeconds', spec: CNI_INSTALL_OPTIONS.checkSeconds, form: { kind: 'integer', min: 1, max: 3600 } },
  { path: 'cni.excludeNamespaces', spec: CNI_INSTALL_OPTIONS.excludeNamespaces, form: { kind: 'list', items: NAMESPACE } },
  { path: 'cni.validateRunAsUser', spec: INJECT_OPTIONS.helperUid, form: { kind: 'integer', min: 1, max: UINT32 - 1 } },
  { path: 'cni.recheckSeconds', spec: NODE_AGENT_OPTIONS.recheckSeconds, form: { kind: 'integer', min: 0, max: 86400 } },
  // 0: the variable is left out, and the agent picks (twice its CPUs) or serves no metrics.
  {
    path: 'cni.concurrency',
    spec: NODE_AGENT_OPTIONS.concurrency,
    form: { kind: 'integer', min: 0, max: 1024 },
    text: v => (v === 0 ? '' : String(v)),
  },
  {
    path: 'cni.metricsPort',
    spec: NODE_AGENT_OPTIONS.metrics,
    form: { kind: 'integer', min: 0, max: 65535 },
    text: v => (v === 0 ? '' : `:${v}/metrics`),
  },
]

/** The settings the CNI plugin's config never carries, and why; every other one is in its settings object. */
export const NOT_IN_CNI_CONFIG: Readonly<Partial<Record<keyof OptionSettings, string>>> = {
  verify: 'at sandbox creation the node reads the rules back exactly; the live check is the pod’s own validate container',
  resolvConf: 'in CNI mode the nameservers come from the runtime (the dns capability), never from a file on the node',
  dnsServers: 'in CNI mode the nameservers come from the runtime (the dns capability)',
}

/** A value as its variable's text, as the chart's templates write it. Pure. */
export const envText = (form: ChartForm, value: unknown): string => {
  if (value === null || value === undefined) return ''
  if (form.kind === 'list') return (value as unknown[]).map(String).join(',')
  return String(value)
}

type Schema = Readonly<Record<string, unknown>>

/** The JSON schema of one value. Pure. */
export const valueSchema = (form: ChartForm): Schema => {
  switch (form.kind) {
    case 'integer': {
      const range: Schema = { type: 'integer', minimum: form.min, maximum: form.max, ...(form.except ? { not: { enum: form.except } } : {}) }
      return form.nullable ? { oneOf: [{ type: 'null' }, range] } : range
    }
    case 'choice':
      return { enum: form.choices }
    case 'boolean':
      return { type: 'boolean' }
    case 'text':
      return { type: 'string' }
    case 'list':
      return { type: 'array', items: form.items ? { type: 'string', pattern: form.items.source } : { type: ['string', 'integer'] } }
    case 'pattern': {
      const pattern = { type: 'string', pattern: form.regex.source }
      return form.empty ? { anyOf: [{ const: '' }, pattern] } : pattern
    }
  }
}

// Helm reads YAML numbers as floats: int64 writes a UID like 4294967294 whole, not as 4.294967294e+09.
const templateExpression = (form: ChartForm, value: string): string => {
  switch (form.kind) {
    case 'integer':
      return form.nullable ? `{{ if kindIs "invalid" ${value} }}""{{ else }}{{ int64 ${value} | quote }}{{ end }}` : `{{ int64 ${value} | quote }}`
    case 'list':
      return `{{ join "," ${value} | quote }}`
    default:
      return `{{ ${value} | toString | quote }}`
  }
}

/** The named templates the chart's env is built from, as templates/_settings.tpl holds them. Pure. */
export const settingsTemplate = (version: string): string => {
  const env = (key: keyof OptionSettings): string => OPTIONS[key].env
  const keys = Object.keys(CHART_VALUES) as (keyof OptionSettings)[]
  const lines = keys.map(key => {
    const { path, form } = CHART_VALUES[key]
    return `- { name: ${env(key)}, value: ${templateExpression(form, `.Values.${path}`)} }`
  })
  const cni = keys.filter(key => !(key in NOT_IN_CNI_CONFIG)).map(key => `"${env(key)}"`)
  const injector = [...annotatableFlags()].filter(([, kind]) => kind === 'inject').map(([flag]) => `"${flag}"`)
  return `{{/* Generated by \`npm run chart:gen\` from src/settings/chart.ts and package.json: edit those, not this file. */}}

{{/*
This chart's own version. Templates included from another chart see that chart's .Chart, so the image tag and
the version label cannot come from .Chart.AppVersion.
*/}}
{{- define "sidecar-redirect.appVersion" -}}
${version}
{{- end }}

{{/* Every capture setting of the table, one entry per value (extraEnv is laid over them by sidecar-redirect.env). */}}
{{- define "sidecar-redirect.settingsEnv" -}}
${lines.join('\n')}
{{- end }}

{{/* The injector's own annotations (inject.sidecar-redirect.io/<flag>), which webhook.annotations decides in both modes. */}}
{{- define "sidecar-redirect.injectorAnnotationNames" -}}
{{- list ${injector.join(' ')} | toJson -}}
{{- end }}

{{/* The settings the CNI plugin's config carries: all but those the node takes elsewhere (src/settings/chart.ts says why). */}}
{{- define "sidecar-redirect.cniSettingNames" -}}
{{- list ${cni.join(' ')} | toJson -}}
{{- end }}
`
}

type SchemaNode = Record<string, unknown>

const propertiesOf = (node: SchemaNode): Record<string, SchemaNode> => {
  if (node['properties'] === undefined) node['properties'] = {}
  return node['properties'] as Record<string, SchemaNode>
}

/** The chart's schema with each setting's value schema at its path, the objects on the way made if missing. Pure. */
export const withValueSchemas = (schema: SchemaNode): SchemaNode => {
  const copy = structuredClone(schema)
  for (const { path, form } of [...(Object.values(CHART_VALUES) as ChartValue[]), ...PART_VALUES]) {
    const parts = path.split('.')
    let node = copy
    for (const part of parts.slice(0, -1)) {
      const properties = propertiesOf(node)
      if (properties[part] === undefined) properties[part] = { type: 'object', additionalProperties: false, properties: {} }
      node = properties[part]
    }
    propertiesOf(node)[parts.at(-1)!] = valueSchema(form)
  }
  // The annotation allow-lists name what the tables let a pod set: the webhook's, every flag a pod may annotate;
  // the node's, the capture settings of trust allow-listed (and capture).
  const properties = propertiesOf(copy)
  propertiesOf(properties['webhook']!)['annotations'] = { type: 'array', items: { enum: [...annotatableFlags().keys()] } }
  propertiesOf(properties['cni']!)['allowedAnnotations'] = { type: 'array', uniqueItems: true, items: { enum: allowableAnnotations() } }
  return copy
}

// JSON as a person would lay it out: a value on one line where it fits in 150 columns, else one member a line.
const oneLine = (value: unknown): string => {
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(oneLine).join(', ')}]`
  const entries = Object.entries(value)
  return entries.length === 0 ? '{}' : `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${oneLine(v)}`).join(', ')} }`
}

const layout = (value: unknown, indent = '', key = ''): string => {
  const flat = oneLine(value)
  if (value === null || typeof value !== 'object' || indent.length + key.length + flat.length <= 150) return flat
  const inner = `${indent}  `
  if (Array.isArray(value)) return `[\n${value.map(v => inner + layout(v, inner)).join(',\n')}\n${indent}]`
  const members = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${layout(v, inner, `${JSON.stringify(k)}: `)}`)
  return `{\n${members.join(',\n')}\n${indent}}`
}

/**
 * The chart's generated files, by path under the chart, from this release's version and the current Chart.yaml
 * and values.schema.json (whose other entries are kept). Pure.
 */
export const chartFiles = (
  version: string,
  current: { readonly 'Chart.yaml': string; readonly 'values.schema.json': string },
): Record<string, string> => ({
  'templates/_settings.tpl': settingsTemplate(version),
  'values.schema.json': `${layout(withValueSchemas(JSON.parse(current['values.schema.json']) as Record<string, unknown>))}\n`,
  'Chart.yaml': current['Chart.yaml'].replace(/^version: .*$/m, `version: ${version}`).replace(/^appVersion: .*$/m, `appVersion: "${version}"`),
})
