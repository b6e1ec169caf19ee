// Where each value of a JSON text lies, in bytes, so the installer can add or remove one element of a conflist's
// "plugins" and leave every other byte as its owner wrote it, invalid UTF-8 included. Pure. The whole text is
// checked as Go's encoding/json (libcni's decoder) checks it: RFC 8259 syntax and nesting at most 10,000 deep
// (encoding/json's maxNestingDepth). The scan never recurses, so a deeply nested text costs no stack, and it keeps
// only the values an outline asks for (and, of every container, which kinds of value it holds), so what it returns
// stays small whatever else the text holds.

export interface Span {
  /** Offset of the value's first byte. */
  readonly start: number
  /** Offset just past its last byte. */
  readonly end: number
}

export interface Member {
  /** The key as Go decodes it (invalid UTF-8 becomes U+FFFD). */
  readonly key: string
  readonly value: Located
}

export type Kind = 'object' | 'array' | 'string' | 'number' | 'true' | 'false' | 'null'

/** The kinds of value a container holds directly, as a bit set: KIND_BITS[kind] for each. */
export const KIND_BITS: Readonly<Record<Kind, number>> = { object: 1, array: 2, string: 4, number: 8, true: 16, false: 32, null: 64 }

/**
 * An object's members and an array's items are listed only where the outline asks for them (else they are
 * empty); `holds` is always there.
 */
export type Located =
  | (Span & { readonly kind: 'object'; readonly members: readonly Member[]; readonly holds: number })
  | (Span & { readonly kind: 'array'; readonly items: readonly Located[]; readonly holds: number })
  | (Span & { readonly kind: 'string' | 'number' | 'true' | 'false' | 'null' })

/** Which values to keep: of an object, the members `keep` gives an outline for; of an array, every item if `items`. */
export interface Outline {
  readonly keep?: (key: string) => Outline | undefined
  readonly items?: Outline
}

export type Scanned = { readonly ok: true; readonly root: Located } | { readonly ok: false; readonly offset: number; readonly reason: string }

/** Go's encoding/json refuses a text nested deeper than this. */
export const MAX_DEPTH = 10_000

type Expect = 'value' | 'value-or-close' | 'key' | 'key-or-close' | 'after' | 'end'

type Frame =
  | {
      readonly kind: 'object'
      readonly start: number
      readonly members: Member[]
      readonly outline: Outline | undefined
      holds: number
      key: Outline | undefined
      name: string
    }
  | { readonly kind: 'array'; readonly start: number; readonly items: Located[]; readonly outline: Outline | undefined; holds: number }

const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d
const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39
const isHex = (b: number | undefined): boolean =>
  b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66))
const ESCAPES = new Set([...'"\\/bfnrt'].map(c => c.charCodeAt(0)))
const LITERALS = { t: 'true', f: 'false', n: 'null' } as const

/** decodeString returns the string a located string value holds, as Go decodes it. Pure. */
export const decodeString = (bytes: Uint8Array, span: Span): string =>
  JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + span.start, span.end - span.start).toString('utf8')) as string

/** scanJson checks a JSON text and locates the values `outline` asks for. Pure; never throws. */
export const scanJson = (bytes: Uint8Array, outline: Outline): Scanned => {
  const n = bytes.length
  const stack: Frame[] = []
  let i = 0
  let root: Located | undefined
  // What may come next: a value, a key, or what follows a value (a comma or the close of its container).
  let expect: Expect = 'value'
  const fail = (reason: string): Scanned => ({ ok: false, offset: i, reason })

  // Files a finished value with its container (or as the root); returns what may come next.
  const emit = (value: Located): Expect => {
    const top = stack.at(-1)
    if (top === undefined) {
      root = value
      return 'end'
    }
    top.holds |= KIND_BITS[value.kind]
    if (top.kind === 'object' && top.key !== undefined) top.members.push({ key: top.name, value })
    if (top.kind === 'array' && top.outline?.items !== undefined) top.items.push(value)
    return 'after'
  }

  // Returns the offset just past a string starting at `at`, or undefined (and `i` at the fault) when it is not one.
  const stringEnd = (at: number): number | undefined => {
    let j = at + 1
    for (;;) {
      const b = bytes[j]
      if (b === undefined) {
        i = j
        return undefined
      }
      if (b === 0x22) return j + 1
      if (b < 0x20) {
        i = j
        return undefined
      }
      if (b !== 0x5c) {
        j++
        continue
      }
      const e = bytes[j + 1]
      if (e !== undefined && ESCAPES.has(e)) j += 2
      else if (e === 0x75 && isHex(bytes[j + 2]) && isHex(bytes[j + 3]) && isHex(bytes[j + 4]) && isHex(bytes[j + 5])) j += 6
      else {
        i = j
        return undefined
      }
    }
  }

  const numberEnd = (at: number): number | undefined => {
    let j = at
    if (bytes[j] === 0x2d) j++
    if (bytes[j] === 0x30) j++
    else if (isDigit(bytes[j])) while (isDigit(bytes[j])) j++
    else return undefined
    if (bytes[j] === 0x2e) {
      j++
      if (!isDigit(bytes[j])) return undefined
      while (isDigit(bytes[j])) j++
    }
    if (bytes[j] === 0x65 || bytes[j] === 0x45) {
      j++
      if (bytes[j] === 0x2b || bytes[j] === 0x2d) j++
      if (!isDigit(bytes[j])) return undefined
      while (isDigit(bytes[j])) j++
    }
    return j
  }

  const close = (): Expect => {
    const frame = stack.pop()!
    i++
    return emit(
      frame.kind === 'object'
        ? { kind: 'object', start: frame.start, end: i, members: frame.members, holds: frame.holds }
        : { kind: 'array', start: frame.start, end: i, items: frame.items, holds: frame.holds },
    )
  }

  for (;;) {
    while (isSpace(bytes[i])) i++
    if (i >= n) return expect === 'end' ? { ok: true, root: root! } : fail('unexpected end of JSON input')
    const b = bytes[i]!
    if (expect === 'end') return fail('invalid character after top-level value')
    if (expect === 'after') {
      const top = stack.at(-1)!
      if (b === 0x2c) {
        i++
        expect = top.kind === 'object' ? 'key' : 'value'
      } else if (b === (top.kind === 'object' ? 0x7d : 0x5d)) expect = close()
      else return fail(`invalid character after ${top.kind === 'object' ? 'object key:value pair' : 'array element'}`)
      continue
    }
    if (expect === 'key' || expect === 'key-or-close') {
      if (expect === 'key-or-close' && b === 0x7d) {
        expect = close()
        continue
      }
      if (b !== 0x22) return fail('invalid character looking for beginning of object key string')
      const end = stringEnd(i)
      if (end === undefined) return fail('invalid string literal')
      const top = stack.at(-1) as Extract<Frame, { kind: 'object' }>
      // Keys are decoded only where the outline may keep a member.
      top.name = top.outline?.keep === undefined ? '' : decodeString(bytes, { start: i, end })
      top.key = top.outline?.keep?.(top.name)
      i = end
      while (isSpace(bytes[i])) i++
      if (bytes[i] !== 0x3a) return fail('invalid character after object key')
      i++
      expect = 'value'
      continue
    }
    // A value (or, first in an array, its close).
    if (expect === 'value-or-close' && b === 0x5d) {
      expect = close()
      continue
    }
    if (b === 0x7b || b === 0x5b) {
      if (stack.length >= MAX_DEPTH) return fail(`exceeded max depth (${MAX_DEPTH})`)
      const parent = stack.at(-1)
      const own = parent === undefined ? outline : parent.kind === 'object' ? parent.key : parent.outline?.items
      stack.push(
        b === 0x7b
          ? { kind: 'object', start: i, members: [], outline: own, holds: 0, key: undefined, name: '' }
          : { kind: 'array', start: i, items: [], outline: own, holds: 0 },
      )
      i++
      expect = b === 0x7b ? 'key-or-close' : 'value-or-close'
      continue
    }
    const start = i
    if (b === 0x22) {
      const end = stringEnd(i)
      if (end === undefined) return fail('invalid string literal')
      i = end
      expect = emit({ kind: 'string', start, end })
      continue
    }
    if (b === 0x2d || isDigit(b)) {
      const end = numberEnd(i)
      if (end === undefined) return fail('invalid number literal')
      i = end
      expect = emit({ kind: 'number', start, end })
      continue
    }
    const literal = LITERALS[String.fromCharCode(b) as keyof typeof LITERALS]
    if (literal === undefined || Buffer.from(bytes.buffer, bytes.byteOffset + i, Math.min(literal.length, n - i)).toString('latin1') !== literal) {
      return fail('invalid character looking for beginning of value')
    }
    i += literal.length
    expect = emit({ kind: literal, start, end: i })
  }
}
