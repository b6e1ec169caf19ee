// The bundle init starts from: every ES module Node loads costs it time (~0.25 ms each on Node 24), so the CLI's
// static graph is kept in as few files as build.mjs can make it, and the libraries init never needs stay out of it.
// Reads dist/ as `npm run build` left it.
import { readdirSync, readFileSync } from 'node:fs'
import { parse } from 'acorn'
import t from 'tap'

const DIST = new URL('../../../dist/', import.meta.url).pathname

/** The files Node loads before our first line runs: cli.mjs and what it imports statically, transitively. */
const staticGraph = (entry: string): string[] => {
  const seen = new Set<string>()
  const visit = (file: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    const text = readFileSync(`${DIST}${file}`, 'utf8')
    for (const [, next] of text.matchAll(/(?:from|import)\s*"\.\/([^"]+\.mjs)"/g)) visit(next!)
  }
  visit(entry)
  return [...seen]
}

t.test('init loads its code from three files, none of them yargs or execa', async t => {
  const files = staticGraph('cli.mjs')
  t.ok(files.length <= 3, `cli.mjs and its static imports: ${files.join(', ')}`)
  const sources = files.flatMap(f => (JSON.parse(readFileSync(`${DIST}${f}.map`, 'utf8')) as { sources: string[] }).sources)
  t.ok(
    sources.some(s => s.endsWith('src/commands/init.ts')),
    'init itself is among them',
  )
  t.notOk(
    sources.find(s => /node_modules\/(yargs|execa|koffi)\//.test(s)),
    'no yargs, execa or koffi: init with env settings and ISTIO_VERIFY=rules needs none',
  )
})

t.test('every function init loads is wrapped in parentheses, so V8 compiles it with its module and the cache keeps it', async t => {
  let bare = 0
  let wrapped = 0
  const visit = (node: Record<string, unknown>, parent?: Record<string, unknown>): void => {
    const type = node['type']
    const method = parent?.['type'] === 'MethodDefinition' || (parent?.['type'] === 'Property' && (parent['method'] || parent['kind'] !== 'init'))
    if ((type === 'FunctionExpression' && !method) || type === 'ArrowFunctionExpression') {
      if (parent?.['type'] === 'ParenthesizedExpression') wrapped++
      else bare++
    }
    for (const child of Object.values(node)) {
      for (const item of Array.isArray(child) ? child : [child]) {
        if (item && typeof item === 'object' && typeof (item as { type?: unknown }).type === 'string') visit(item as Record<string, unknown>, node)
      }
    }
  }
  for (const file of staticGraph('cli.mjs')) {
    visit(parse(readFileSync(`${DIST}${file}`, 'utf8'), { ecmaVersion: 'latest', sourceType: 'module', preserveParens: true }) as never)
  }
  t.ok(wrapped > 100, `${wrapped} functions wrapped`)
  t.equal(bare, 0, 'none left to compile lazily')
})

t.test("a lazily loaded module's map keeps its lines: the static graph's imports are added after its own text", async t => {
  const probe = readdirSync(DIST).find(f => /^probe-.*\.mjs\.map$/.test(f))
  t.ok(probe, 'the live probe is a chunk of its own')
  const map = JSON.parse(readFileSync(`${DIST}${probe}`, 'utf8')) as { sources: string[]; sourcesContent: string[] }
  const at = map.sources.findIndex(s => s.endsWith('src/verify/probe.ts'))
  const original = readFileSync(new URL('../../../src/verify/probe.ts', import.meta.url), 'utf8')
  t.ok(map.sourcesContent[at]?.startsWith(original), 'probe.ts as written, line for line, then the added imports')
})
