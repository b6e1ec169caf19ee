// Where each value of a JSON text lies, so the installer can add or remove one element of a conflist's "plugins"
// array and leave every other byte of the file as its owner wrote it (JSON.parse + stringify would reformat it
// all). Pure. The scanner itself assumes valid JSON (on a truncated text it would never end), so locateJson lets
// JSON.parse check the text first and throws its SyntaxError.

export interface Span {
  /** Offset of the value's first character. */
  readonly start: number
  /** Offset just past its last character. */
  readonly end: number
}

export type Located =
  | (Span & { readonly kind: 'object'; readonly members: readonly { readonly key: string; readonly value: Located }[] })
  | (Span & { readonly kind: 'array'; readonly items: readonly Located[] })
  | (Span & { readonly kind: 'scalar' })

const WHITESPACE = new Set([' ', '\t', '\n', '\r'])
const SCALAR_END = new Set([',', ']', '}', ...WHITESPACE])

const skip = (text: string, at: number): number => {
  let i = at
  while (i < text.length && WHITESPACE.has(text[i]!)) i++
  return i
}

const stringEnd = (text: string, at: number): number => {
  let i = at + 1
  while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1
  return i + 1
}

const locateAt = (text: string, at: number): Located => {
  const start = skip(text, at)
  const open = text[start]
  if (open === '{' || open === '[') {
    const members: { key: string; value: Located }[] = []
    const items: Located[] = []
    let i = skip(text, start + 1)
    while (text[i] !== (open === '{' ? '}' : ']')) {
      if (open === '{') {
        const keyEnd = stringEnd(text, i)
        const key = JSON.parse(text.slice(i, keyEnd)) as string
        const value = locateAt(text, skip(text, keyEnd) + 1)
        members.push({ key, value })
        i = value.end
      } else {
        const item = locateAt(text, i)
        items.push(item)
        i = item.end
      }
      i = skip(text, i)
      if (text[i] === ',') i = skip(text, i + 1)
    }
    const end = i + 1
    return open === '{' ? { kind: 'object', start, end, members } : { kind: 'array', start, end, items }
  }
  if (open === '"') return { kind: 'scalar', start, end: stringEnd(text, start) }
  let end = start
  while (end < text.length && !SCALAR_END.has(text[end]!)) end++
  return { kind: 'scalar', start, end }
}

/** locateJson maps a JSON text to the spans of its values. Pure; throws SyntaxError when it is not JSON. */
export const locateJson = (text: string): Located => {
  JSON.parse(text)
  return locateAt(text, 0)
}
