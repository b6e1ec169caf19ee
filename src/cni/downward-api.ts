// The pod's annotations as the kubelet's downward API writes them into a volume (fieldRef metadata.annotations),
// so that validate decides the pod's effective settings from the same annotations the node agent was handed. The
// kubelet writes one `key="value"` line per annotation, sorted by key, with the value quoted as Go's %q quotes a
// string (strconv.Quote: \a \b \f \n \r \t \v \\ \", \xHH for other control bytes and invalid UTF-8, \uHHHH and
// \UHHHHHHHH for unprintable runes, printable UTF-8 as is), so every value is one line whatever it holds.

import { ConfigError } from '../errors.js'

const SIMPLE: Readonly<Record<string, number>> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34, "'": 39 }
const HEX_LENGTH: Readonly<Record<string, number>> = { x: 2, u: 4, U: 8 }

/** unquoteGo reads a Go double-quoted string literal (the whole text); undefined when it is not one. Pure. */
export const unquoteGo = (quoted: string): string | undefined => {
  if (quoted.length < 2 || !quoted.startsWith('"') || !quoted.endsWith('"')) return undefined
  const body = quoted.slice(1, -1)
  const bytes: number[] = []
  for (let i = 0; i < body.length; ) {
    const c = body[i] ?? ''
    if (c === '"') return undefined
    if (c !== '\\') {
      const point = body.codePointAt(i) ?? 0
      const char = String.fromCodePoint(point)
      bytes.push(...Buffer.from(char))
      i += char.length
      continue
    }
    const kind = body[i + 1] ?? ''
    const simple = SIMPLE[kind]
    if (simple !== undefined) {
      bytes.push(simple)
      i += 2
      continue
    }
    const length = HEX_LENGTH[kind]
    const digits = body.slice(i + 2, i + 2 + (length ?? 0))
    if (length === undefined || !new RegExp(`^[0-9a-fA-F]{${length}}$`).test(digits)) return undefined
    const value = Number.parseInt(digits, 16)
    // \x is one byte (it may be half of a character); \u and \U are whole code points.
    if (kind === 'x') bytes.push(value)
    else if (value > 0x10ffff) return undefined
    else bytes.push(...Buffer.from(String.fromCodePoint(value)))
    i += 2 + length
  }
  return Buffer.from(bytes).toString('utf8')
}

/** parseAnnotationsFile reads a downward API annotations file; throws ConfigError naming `variable` and the line. Pure. */
export const parseAnnotationsFile = (text: string, variable: string, path: string): Record<string, string> => {
  const annotations: Record<string, string> = {}
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    const eq = line.indexOf('=')
    const value = eq > 0 ? unquoteGo(line.slice(eq + 1)) : undefined
    if (value === undefined)
      throw new ConfigError(
        variable,
        path,
        `a downward API annotations file: key="value" lines, the value quoted as Go quotes it (line ${i + 1} is not)`,
      )
    annotations[line.slice(0, eq)] = value
  }
  return annotations
}
