// scripts/eager-compile.mjs on a small module built the way build.mjs builds: the wrapped module behaves the same,
// every function expression and arrow is parenthesized (methods and accessors cannot be, and are not), and the
// shifted source map sends each token to the same source position as before.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { decode } from '@jridgewell/sourcemap-codec'
import { parse } from 'acorn'
import { transform } from 'esbuild'
import t from 'tap'
// @ts-expect-error: a build script in plain JavaScript, without types
import { wrapFunctions } from '../../../scripts/eager-compile.mjs'

const SOURCE = `
export const double = (n: number) => n * 2
export const later = async (n: number) => await Promise.resolve(n + 1)
export function named(list: number[]) { return list.map(function (x) { return x + 1 }).filter(x => x > 2) }
export class Counter {
  count = 0
  bump = () => ++this.count
  get twice() { return this.count * 2 }
  add(n: number) { this.count += n; return this }
}
export const table = { run() { return 'run' }, get size() { return 3 }, make: () => ({ made: true }) }
export const curried = (a: number) => (b: number) => function inner(c: number) { return a + b + c }
`

type Segment = [number, number, number, number] | [number]

/** The source position a generated (line, column) maps to: the last segment at or before the column. */
const original = (lines: Segment[][], line: number, column: number): string => {
  const segment = [...(lines[line] ?? [])].reverse().find(s => s[0] <= column)
  return segment && segment.length >= 4 ? `${segment[1]}:${segment[2]}:${segment[3]}` : 'unmapped'
}

const positions = (code: string, word: string): { line: number; column: number }[] =>
  [...code.matchAll(new RegExp(`\\b${word}\\b`, 'g'))].map(m => {
    const before = code.slice(0, m.index)
    return { line: before.split('\n').length - 1, column: m.index - before.lastIndexOf('\n') - 1 }
  })

t.test('wrapFunctions: same behaviour, every function wrapped, the map still true', async t => {
  const dir = mkdtempSync(`${tmpdir()}/sr-eager-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const built = await transform(SOURCE, {
    loader: 'ts',
    format: 'esm',
    minify: true,
    keepNames: true,
    sourcemap: 'external',
    sourcefile: 'sample.ts',
  })
  const file = `${dir}/sample.mjs`
  writeFileSync(file, `${built.code}//# sourceMappingURL=sample.mjs.map\n`)
  writeFileSync(`${file}.map`, built.map)
  const before = readFileSync(file, 'utf8')
  const beforeMap = decode(JSON.parse(built.map).mappings) as Segment[][]

  const count = await wrapFunctions(file)
  const after = readFileSync(file, 'utf8')
  const afterMap = decode(JSON.parse(readFileSync(`${file}.map`, 'utf8')).mappings) as Segment[][]
  t.equal(count, 10, "the nine arrows and function expressions of the source, and esbuild's keepNames helper; no method or accessor")

  const m = await import(file)
  t.equal(m.double(4), 8)
  t.equal(await m.later(1), 2)
  t.same(m.named([1, 2, 3]), [3, 4])
  const counter = new m.Counter().add(2)
  t.equal(counter.bump(), 3)
  t.equal(counter.twice, 6)
  t.same([m.table.run(), m.table.size, m.table.make()], ['run', 3, { made: true }])
  t.equal(m.curried(1)(2)(3), 6)
  t.equal(m.Counter.name, 'Counter', 'names kept')

  let bare = 0
  const visit = (node: Record<string, unknown>, parent?: Record<string, unknown>): void => {
    const method = parent?.['type'] === 'MethodDefinition' || (parent?.['type'] === 'Property' && (parent['method'] || parent['kind'] !== 'init'))
    const fn = (node['type'] === 'FunctionExpression' && !method) || node['type'] === 'ArrowFunctionExpression'
    if (fn && parent?.['type'] !== 'ParenthesizedExpression') bare++
    for (const child of Object.values(node))
      for (const item of Array.isArray(child) ? child : [child])
        if (item && typeof item === 'object' && typeof (item as { type?: unknown }).type === 'string') visit(item as Record<string, unknown>, node)
  }
  visit(parse(after, { ecmaVersion: 'latest', sourceType: 'module', preserveParens: true }) as never)
  t.equal(bare, 0, 'no function left unwrapped')

  for (const word of ['Promise', 'map', 'filter', 'count', 'made', 'inner', 'return']) {
    const [was, is] = [positions(before, word), positions(after, word)]
    t.equal(is.length, was.length, `${word}: as often as before`)
    t.same(
      is.map(p => original(afterMap, p.line, p.column)),
      was.map(p => original(beforeMap, p.line, p.column)),
      `${word}: maps to the same source positions`,
    )
  }
})
