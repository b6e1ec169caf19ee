// The house's layers, checked from the code's own imports: every import in src/ goes down the table below (or
// stays in its room), and no files import each other in a circle. A new room must be given a layer here.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import t from 'tap'

const SRC = new URL('../../../src', import.meta.url).pathname

// Lowest first. A room is a folder of src/ or a file directly in it.
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'order.ts', 'started.ts', 'text.ts'],
  ['settings'],
  ['exec', 'net', 'log.ts'],
  ['cgroup', 'plan', 'privilege', 'inject'],
  ['path'],
  ['backend', 'classifier'],
  // What a command may do to the world: the node agent's engine (cni) builds one per pod.
  ['io.ts'],
  ['verify', 'agent', 'cni', 'webhook'],
  ['commands', 'cli.ts', 'peer.ts'],
  ['main.ts'],
  ['bin.ts'],
]

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap(name => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : []
  })

const importsOf = (file: string): string[] =>
  [...readFileSync(file, 'utf8').matchAll(/(?:from |import\(|import )'(\.{1,2}\/[^']+)'/g)].map(m =>
    resolve(dirname(file), m[1]!).replace(/\.js$/, '.ts'),
  )

const roomOf = (file: string): string => relative(SRC, file).split('/')[0]!
const layerOf = (room: string): number => LAYERS.findIndex(layer => layer.includes(room))

const graph = new Map(files(SRC).map(f => [f, importsOf(f)]))

t.test('every room has a layer', async t => {
  for (const room of new Set([...graph.keys()].map(roomOf))) t.ok(layerOf(room) >= 0, `${room} is in LAYERS`)
})

t.test('every import between rooms goes down a layer', async t => {
  const upward = [...graph].flatMap(([file, imports]) =>
    imports
      .filter(i => roomOf(i) !== roomOf(file) && layerOf(roomOf(i)) >= layerOf(roomOf(file)))
      .map(i => `${relative(SRC, file)} -> ${relative(SRC, i)}`),
  )
  t.same(upward, [], 'no import runs up or sideways')
})

t.test('no files import each other in a circle', async t => {
  // Tarjan's strongly connected components: any with more than one file is a circle.
  let index = 0
  const order = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const circles: string[][] = []
  const visit = (v: string): void => {
    order.set(v, index)
    low.set(v, index++)
    stack.push(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!order.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, order.get(w)!))
    }
    if (low.get(v) === order.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop()!
        component.push(relative(SRC, w))
      } while (w !== v)
      if (component.length > 1) circles.push(component)
    }
  }
  for (const v of graph.keys()) if (!order.has(v)) visit(v)
  t.same(circles, [], 'no circles')
})

// The node agent runs every pod's init, verify and clean in one process: a module-level variable would be state
// shared between pods' requests. Allowed: caches made on first use that never change afterwards (libc's FFI
// bindings; the injector's default settings; the module Istio's probe loads lazily).
const LAZY_CONSTANTS = ['net/libc.ts:', 'inject/containers.ts:', 'verify/istio-probe.ts:']
t.test("no module keeps mutable state at its top level (one pod's request cannot leave any for another)", async t => {
  const found = [...graph.keys()].flatMap(file =>
    readFileSync(file, 'utf8')
      .split('\n')
      .flatMap((line, i) => (/^(export )?(let|var) /.test(line) ? [`${relative(SRC, file)}:${i + 1}: ${line}`] : [])),
  )
  t.same(
    found.filter(l => !LAZY_CONSTANTS.some(allowed => l.startsWith(allowed))),
    [],
    'no top-level let or var but the caches that never change',
  )
})

t.test('the check sees imports at all', async t => {
  t.ok([...graph.values()].flat().length > 100, 'imports were read')
})
