// A misspelt setting (ISTIO_PROXY_PROT) would otherwise be ignored without a word and its default used. Istio and
// other components set ISTIO_* variables of their own, so only a name within two edits of one of ours is taken
// for a typo, and ISTIO_META_* (proxy metadata) never is.

import { INJECT_OPTIONS, WEBHOOK_OPTIONS } from './inject-options.js'
import { AGENT_OPTIONS, CLASSIFIER_OPTIONS, CNI_INSTALL_OPTIONS, NODE_AGENT_OPTIONS, OPTIONS } from './options.js'
import { ISTIO_NAMES } from './istio-names.js'
import type { Env } from './parse.js'

const MAX_EDITS = 2
const NOT_OURS = /^ISTIO_META_/

export const SETTING_NAMES: readonly string[] = [
  ...new Set(
    [OPTIONS, AGENT_OPTIONS, CLASSIFIER_OPTIONS, NODE_AGENT_OPTIONS, CNI_INSTALL_OPTIONS, INJECT_OPTIONS, WEBHOOK_OPTIONS].flatMap(table =>
      Object.values(table).map(spec => spec.env),
    ),
  ),
]

/** Levenshtein distance between a and b, by the two-row method. Pure. */
export const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

export interface Misspelt {
  readonly variable: string
  readonly suggestion: string
  readonly message: string
}

/** findMisspelt lists the ISTIO_* variables in env that are not settings but close to one, in name order. Pure. */
export const findMisspelt = (env: Env, names: readonly string[] = SETTING_NAMES): Misspelt[] =>
  Object.keys(env)
    .filter(name => name.startsWith('ISTIO_') && !NOT_OURS.test(name) && !names.includes(name) && !Object.hasOwn(ISTIO_NAMES, name))
    .sort()
    .flatMap(variable => {
      const [best] = names.map(name => ({ name, edits: editDistance(variable, name) })).sort((x, y) => x.edits - y.edits)
      if (best === undefined || best.edits > MAX_EDITS) return []
      // A name is quoted only when it holds more than letters, digits and _, so a control character stays visible.
      const message = `${/^\w+$/.test(variable) ? variable : JSON.stringify(variable)} is not a setting; did you mean ${best.name}?`
      return [{ variable, suggestion: best.name, message }]
    })
