// inject and uninject: Kubernetes YAML or JSON in (stdin, files, directories), the same out with every pod
// template injected (or restored). A YAML document is changed through its node tree, so comments, order and
// quoting stay where the patch does not reach, and a document with nothing to inject is written back byte for
// byte. A refused object fails the whole run (exit 10) with nothing written: half a manifest is worse than none.

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { type Document, Parser, parseAllDocuments } from 'yaml'
import { RefusedError, UsageError } from '../errors.js'
import type { Json } from '../inject/containers.js'
import type { SettingsSource } from '../inject/settings.js'
import { type ObjectResult, transformObject } from '../inject/workloads.js'
import { applyToDocument } from '../inject/yaml-patch.js'
import type { Logger, Output } from '../log.js'
import { messageOf } from '../text.js'

export type Action = 'inject' | 'uninject'

/** One input: its name for messages and its text. */
export interface Input {
  readonly name: string
  readonly text: string
}

const MANIFEST = /\.(ya?ml|json)$/

/** readInputs reads `-f` arguments (files, directories' *.yaml, *.yml and *.json, `-` for stdin), in order. */
export const readInputs = async (files: readonly string[], readStdin: () => Promise<string>): Promise<Input[]> => {
  const inputs: Input[] = []
  for (const file of files.length === 0 ? ['-'] : files) {
    try {
      if (file === '-') inputs.push({ name: 'stdin', text: await readStdin() })
      else if (statSync(file).isDirectory()) {
        for (const name of readdirSync(file)
          .filter(n => MANIFEST.test(n))
          .sort())
          inputs.push({ name: join(file, name), text: readFileSync(join(file, name), 'utf8') })
      } else inputs.push({ name: file, text: readFileSync(file, 'utf8') })
    } catch (error) {
      throw new UsageError(`-f ${JSON.stringify(file)}: cannot read it: ${(error as NodeJS.ErrnoException).code ?? messageOf(error)}`)
    }
  }
  return inputs
}

interface Transformed {
  readonly text: string
  readonly results: readonly ObjectResult[]
}

// JSON in, JSON out: a .json file, or any input that is one JSON value (a stream of them, separated by ---, is YAML).
const parseJson = (input: Input): Json | undefined => {
  if (!input.name.endsWith('.json') && !/^\s*[{[]/.test(input.text)) return undefined
  try {
    return JSON.parse(input.text) as Json
  } catch (error) {
    if (input.name.endsWith('.json')) throw new UsageError(`${input.name}: not valid JSON: ${messageOf(error)}`)
    return undefined
  }
}

const transformJson = (input: Input, value: Json, action: Action, source: SettingsSource): Transformed => {
  const result = transformObject(value, action, source)
  return { text: result.ops.length === 0 ? input.text : `${JSON.stringify(result.object, null, 2)}\n`, results: [result] }
}

// Each document's own text, from the parser's offsets: the first holds what comes before it (a leading comment).
const documentTexts = (text: string): string[] => {
  const starts = [...new Parser().parse(text)].filter(token => token.type === 'document').map(token => token.offset)
  return starts.map((start, i) => text.slice(i === 0 ? 0 : start, starts[i + 1] ?? text.length))
}

const transformYaml = (input: Input, action: Action, source: SettingsSource): Transformed => {
  const docs = parseAllDocuments(input.text)
  if (!Array.isArray(docs)) return { text: input.text, results: [] }
  const texts = documentTexts(input.text)
  const results: ObjectResult[] = []
  const out = docs.map((doc: Document, i) => {
    const error = doc.errors[0]
    if (error) throw new UsageError(`${input.name}: not valid YAML: ${error.message.split('\n')[0]}`)
    const result = transformObject(doc.toJS() as Json, action, source)
    results.push(result)
    if (result.ops.length === 0) return texts[i] ?? doc.toString()
    applyToDocument(doc, result.ops)
    // The node tree must now hold exactly what the patch made of the data; anything else is a bug here.
    if (!isDeepStrictEqual(doc.toJS(), result.object))
      throw new Error(`${input.name}: document ${i + 1}: the YAML tree and the patched object differ`)
    const written = doc.toString()
    return i + 1 < docs.length && !written.endsWith('\n') ? `${written}\n` : written
  })
  return { text: out.join(''), results }
}

/**
 * runInject injects (or uninjects) every pod template of every input and writes the result to `out`; warnings
 * go to the logger. Throws RefusedError listing every refusal, having written nothing.
 */
export const runInject = (action: Action, inputs: readonly Input[], source: SettingsSource, out: Output, logger: Logger): void => {
  const transformed = inputs.map(input => {
    const json = parseJson(input)
    return json === undefined ? transformYaml(input, action, source) : transformJson(input, json, action, source)
  })
  const results = transformed.flatMap(t => t.results)
  const refusals = results.flatMap(r => r.refusals)
  for (const w of results.flatMap(r => r.warnings))
    logger.event('warning', `${w.label}: ${w.field} ${w.message}`, { object: w.label, field: w.field })
  if (refusals.length > 0) {
    throw new RefusedError(
      `refused to ${action} ${new Set(refusals.map(r => r.label)).size} object(s), for the ${refusals.length} field(s) below; nothing was written`,
      refusals.map(r => `${r.label}: ${r.field} ${r.message}`),
    )
  }
  // One stream: inputs are separated by ---, unless the next one starts with its own.
  const texts = transformed.map(t => (t.text.endsWith('\n') || t.text === '' ? t.text : `${t.text}\n`))
  out.write(texts.map((text, i) => (i === 0 || /^---(\s|$)/.test(text) ? text : `---\n${text}`)).join(''))
}
