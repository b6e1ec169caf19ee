// The chart's values for the capture settings, against the settings table: the generated chart files are what
// is committed, values.yaml holds the table's defaults, and the schema and the CLI give every sample value the
// same verdict (the schema leaves text to the CLI, which refuses a bad one in one line naming the variable).
// test/pods/chart/chart.test.ts renders each value with real Helm and finds it in every container that takes it.
import { readFileSync } from 'node:fs'
import { Ajv } from 'ajv'
import t from 'tap'
import { parse } from 'yaml'
import { ConfigError } from '../../../src/errors.js'
import { CHART_VALUES, type ChartForm, chartFiles, envText, PART_VALUES } from '../../../src/settings/chart.js'
import { OPTIONS } from '../../../src/settings/options.js'
import { formatSettings } from '../../../src/settings/format.js'
import { parseSettings } from '../../../src/settings/parse.js'
import type { OptionSettings } from '../../../src/settings/types.js'
import { TEXT_SAMPLES } from '../../helpers/setting-samples.js'

const ROOT = new URL('../../../', import.meta.url)
const CHART = new URL('charts/sidecar-redirect/', ROOT)
const read = (name: string): string => readFileSync(new URL(name, CHART), 'utf8')
const KEYS = Object.keys(CHART_VALUES) as (keyof OptionSettings)[]
const at = (values: Record<string, any>, path: string): unknown => path.split('.').reduce<any>((node, part) => node?.[part], values)
/** values with the one at `path` replaced, as a value file laid over them by Helm would. */
const withValue = (values: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> => {
  const merged = structuredClone(values)
  const parts = path.split('.')
  const parent = parts.slice(0, -1).reduce<any>((node, part) => node[part], merged)
  parent[parts.at(-1)!] = value
  return merged
}

t.test('the committed chart is what `npm run chart:gen` writes from the table and package.json', async t => {
  const { version } = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { version: string }
  const files = chartFiles(version, { 'Chart.yaml': read('Chart.yaml'), 'values.schema.json': read('values.schema.json') })
  for (const [name, text] of Object.entries(files)) t.equal(read(name), text, `${name} is up to date (run npm run chart:gen)`)
  const chart = parse(read('Chart.yaml')) as { version: string; appVersion: string }
  t.same([chart.version, chart.appVersion], [version, version], "Chart.yaml's version and appVersion are package.json's")
  t.match(files['templates/_settings.tpl'], `{{- define "sidecar-redirect.appVersion" -}}\n${version}\n`, 'and so is the templates’ own')
})

t.test("values.yaml has a value for every setting of the table, and its default is the table's", async t => {
  const values = parse(read('values.yaml')) as Record<string, any>
  for (const key of KEYS) {
    const { path, form } = CHART_VALUES[key]
    const value = at(values, path)
    t.not(value, undefined, `${path} is in values.yaml`)
    t.equal(envText(form, value), OPTIONS[key].default, `${path} (${OPTIONS[key].env}) defaults to ${JSON.stringify(OPTIONS[key].default)}`)
  }
})

/** For integer, choice and boolean values: the samples at their bounds and just past them, and a few that are not of the kind. */
const formSamples = (form: ChartForm): unknown[] => {
  switch (form.kind) {
    case 'integer':
      return [form.min, form.max, form.min - 1, form.max + 1, form.min + 0.5, ...(form.except ?? []), ...(form.nullable ? [null] : [])]
    case 'choice':
      return [...form.choices, 'bogus', '', form.choices[0]!.toUpperCase(), form.choices[0]!.toLowerCase()]
    case 'boolean':
      return [true, false]
    default:
      return []
  }
}

/** A value's verdict from the CLI: undefined when the parser takes the text the chart writes, else its refusal. */
type Cli = (value: unknown) => ConfigError | undefined

const verdict =
  (parseText: (text: string) => unknown, text: (value: unknown) => string): Cli =>
  value => {
    try {
      parseText(text(value))
      return undefined
    } catch (error) {
      if (error instanceof ConfigError) return error
      throw error
    }
  }

// Values of the other parts' settings whose form is an expression of the table's (image references, namespaces).
const PATTERN_SAMPLES: Record<string, { good: unknown[]; bad: unknown[] }> = {
  'proxy.image': {
    good: ['', 'envoyproxy/envoy:v1.30.1', 'registry.example:5000/proxy@sha256:0123abcd'],
    bad: ['envoy proxy', '"envoy"', '-envoy', 'a'.repeat(512)],
  },
  'webhook.excludeNamespaces': { good: [['monitoring', 'a-1'], []], bad: [['Kube_System'], ['-a'], ['a'.repeat(64)]] },
  'cni.excludeNamespaces': { good: [['kube-system', 'monitoring'], []], bad: [['Kube_System'], ['a-'], ['a.b']] },
}

t.test('for every value that carries a setting, the schema and the CLI give each sample the same verdict', async t => {
  const schema = JSON.parse(read('values.schema.json')) as Record<string, unknown>
  const validate = new Ajv({ strict: false, allErrors: true }).compile(schema)
  const defaults = parse(read('values.yaml')) as Record<string, unknown>
  const schemaTakes = (path: string, value: unknown): boolean => validate(withValue(defaults, path, value)) === true
  const check = (path: string, form: ChartForm, env: string, cli: Cli, samples: { good: unknown[]; bad: unknown[] } | undefined): void => {
    if (form.kind === 'choice') {
      // The choices are the parser's own, read from its refusal.
      t.match(cli('bogus')?.accepted, `one of ${form.choices.join(', ')}`, `${path}: the choices are the table's`)
    }
    for (const value of formSamples(form)) {
      const takes = cli(value) === undefined
      t.equal(schemaTakes(path, value), takes, `${path}=${JSON.stringify(value)}: the schema ${takes ? 'takes' : 'refuses'} it, as the CLI does`)
    }
    if (form.kind !== 'text' && form.kind !== 'list' && form.kind !== 'pattern') {
      t.notOk(samples, `${path}: checked by its form`)
      return
    }
    if (!t.ok(samples, `${path}: the test has good and bad values for ${env}`) || !samples) return
    // Text the table has no expression for is the CLI's alone to judge: the schema checks only the kind of value.
    const cliOnly = form.kind === 'text' || (form.kind === 'list' && !form.items)
    for (const value of samples.good) {
      t.ok(schemaTakes(path, value), `${path}=${JSON.stringify(value)}: the schema takes it`)
      t.equal(cli(value), undefined, `${path}=${JSON.stringify(value)}: and so does the CLI`)
    }
    for (const value of samples.bad) {
      t.equal(schemaTakes(path, value), cliOnly, `${path}=${JSON.stringify(value)}: the schema ${cliOnly ? 'leaves it to the CLI' : 'refuses it'}`)
      const refusal = cli(value)
      t.ok(refusal, `${path}=${JSON.stringify(value)}: the CLI refuses it`)
      t.equal(refusal?.variable, env, `  naming ${env}`)
      t.match(refusal?.message, /^[^\n]+$/, '  in one line')
    }
  }
  for (const key of KEYS) {
    const { path, form } = CHART_VALUES[key]
    const text = (value: unknown): string => envText(form, value)
    check(
      path,
      form,
      OPTIONS[key].env,
      verdict(t => parseSettings({ [OPTIONS[key].env]: t }), text),
      TEXT_SAMPLES[key],
    )
  }
  for (const { path, form, spec, text } of PART_VALUES) {
    check(
      path,
      form,
      spec.env,
      verdict(t => spec.parse(t, spec.env), text ?? (value => envText(form, value))),
      PATTERN_SAMPLES[path],
    )
  }
})

t.test('a value of the wrong kind is refused by the schema before anything renders', async t => {
  const validate = new Ajv({ strict: false }).compile(JSON.parse(read('values.schema.json')))
  const defaults = parse(read('values.yaml')) as Record<string, unknown>
  for (const [path, value] of [
    ['proxy.port', '5001'],
    ['dns.port', [53]],
    ['mark', 1],
    ['inbound.ports', '80'],
    ['strictEnv', 'true'],
  ] as const) {
    t.notOk(validate(withValue(defaults, path, value)), `${path}=${JSON.stringify(value)}`)
  }
})

t.test('every good value, written back as the injector writes a pod’s env, reads as the same setting', async t => {
  for (const key of KEYS) {
    const { form } = CHART_VALUES[key]
    const env = OPTIONS[key].env
    const good = [...formSamples(form), ...(TEXT_SAMPLES[key]?.good ?? [])].flatMap(value => {
      try {
        return [parseSettings({ [env]: envText(form, value) })]
      } catch {
        return []
      }
    })
    t.ok(good.length > 0, `${env}: some good values`)
    for (const settings of good) {
      const written = formatSettings(settings)[env]!
      const again = (() => {
        try {
          return parseSettings({ [env]: written })[key]
        } catch (error) {
          return error instanceof Error ? error.message : error
        }
      })()
      t.same(again, settings[key], `${env}=${JSON.stringify(written)}`)
    }
  }
})
