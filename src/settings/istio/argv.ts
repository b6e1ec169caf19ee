// Reads a command line the way Go's pflag (under cobra) reads Istio's: `--name=value`, `--name value`, `-x value`,
// `-xvalue`, `-x=value`, bundled booleans (`-nq 80`: -n, then -q takes 80), a boolean alone is true and takes a value
// only after `=`, `--` ends the flags, and any other word is an argument (cobra lets a leaf command's arguments
// through unread). A flag given twice keeps the last value, except a list flag, which collects them. Pure; the
// errors say what pflag says, as UsageError.

import { UsageError } from '../../errors.js'
import type { IstioFlag } from './options.js'

export interface ParsedArgv {
  /** Raw values by key, in command-line order. */
  readonly values: ReadonlyMap<string, readonly string[]>
  readonly args: readonly string[]
  readonly help: boolean
}

/** parseArgv reads argv (without the command name) against the flags by key. Pure; throws UsageError. */
export const parseArgv = (argv: readonly string[], flags: Readonly<Record<string, IstioFlag>>): ParsedArgv => {
  const byLong = new Map(Object.entries(flags).map(([key, f]) => [f.long, { key, f }]))
  const byShort = new Map(Object.entries(flags).flatMap(([key, f]) => (f.short ? [[f.short, { key, f }] as const] : [])))
  const values = new Map<string, string[]>()
  const args: string[] = []
  let help = false
  const set = (key: string, value: string): void => {
    const list = values.get(key) ?? []
    values.set(key, [...list, value])
  }
  const rest = [...argv]
  while (rest.length > 0) {
    const word = rest.shift()!
    if (word === '--') {
      args.push(...rest)
      break
    }
    if (!word.startsWith('-') || word === '-') {
      args.push(word)
      continue
    }
    if (word.startsWith('--')) {
      const body = word.slice(2)
      if (body.startsWith('-') || body.startsWith('=')) throw new UsageError(`bad flag syntax: ${word}`)
      const eq = body.indexOf('=')
      const name = eq < 0 ? body : body.slice(0, eq)
      if (name === 'help') {
        help = true
        continue
      }
      const found = byLong.get(name)
      if (!found) throw new UsageError(`unknown flag: --${name}`)
      if (eq >= 0) set(found.key, body.slice(eq + 1))
      else if (found.f.kind === 'bool') set(found.key, 'true')
      else if (rest.length > 0) set(found.key, rest.shift()!)
      else throw new UsageError(`flag needs an argument: --${name}`)
      continue
    }
    // Shorthands: each letter a flag, until one that takes a value takes the rest of the word or the next one.
    const letters = word.slice(1)
    for (let i = 0; i < letters.length; i++) {
      const c = letters[i]!
      if (c === 'h') {
        help = true
        continue
      }
      const found = byShort.get(c)
      if (!found) throw new UsageError(`unknown shorthand flag: '${c}' in -${letters}`)
      const after = letters.slice(i + 1)
      if (found.f.kind === 'bool') {
        if (after.startsWith('=')) {
          set(found.key, after.slice(1))
          break
        }
        set(found.key, 'true')
        continue
      }
      if (after !== '') set(found.key, after.startsWith('=') ? after.slice(1) : after)
      else if (rest.length > 0) set(found.key, rest.shift()!)
      else throw new UsageError(`flag needs an argument: '${c}' in -${letters}`)
      break
    }
  }
  return { values, args, help }
}
