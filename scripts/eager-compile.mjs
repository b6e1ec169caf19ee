// V8 compiles most functions only when they are first called, and Node's compile cache stores a module's code as
// it was when the module was compiled, before it ran: so every init compiled, again, each function it calls
// (callgrind, Node 24: lazy compiles were a fifth of the process's instructions). V8 compiles a function expression
// or arrow that is wrapped in parentheses eagerly, with its module (Node 24; Node 20's V8 does so for `(function`
// only). wrapFunctions wraps every one of an emitted file that way, so the cache holds them, and shifts the file's
// source map by the characters it inserts. Declarations, methods and accessors take no parentheses: they stay lazy.
import { readFile, writeFile } from 'node:fs/promises'
import { decode, encode } from '@jridgewell/sourcemap-codec'
import { parse } from 'acorn'

// Methods, getters and setters are FunctionExpressions in the tree too, but their syntax takes no parentheses.
const isMethod = (parent, key) => key === 'value' && (parent.type === 'MethodDefinition' || (parent.type === 'Property' && (parent.method || parent.kind !== 'init')))

/** The offsets of every function expression and arrow function that can be wrapped, as [start, end] pairs. */
const functionsIn = code => {
  const found = []
  const visit = (node, parent, key) => {
    if ((node.type === 'FunctionExpression' && !isMethod(parent, key)) || node.type === 'ArrowFunctionExpression') found.push([node.start, node.end])
    for (const [name, child] of Object.entries(node)) {
      if (Array.isArray(child)) for (const item of child) item && typeof item.type === 'string' && visit(item, node, name)
      else if (child && typeof child.type === 'string') visit(child, node, name)
    }
  }
  visit(parse(code, { ecmaVersion: 'latest', sourceType: 'module' }), undefined, undefined)
  return found
}

/** Wraps the functions of `file` (an emitted module with a linked `file.map`) in parentheses; returns how many. */
export const wrapFunctions = async file => {
  const code = await readFile(file, 'utf8')
  const functions = functionsIn(code)
  const inserts = functions.flatMap(([start, end]) => [{ at: start, text: '(' }, { at: end, text: ')' }]).sort((a, b) => a.at - b.at)
  let wrapped = ''
  let from = 0
  for (const { at, text } of inserts) {
    wrapped += code.slice(from, at) + text
    from = at
  }
  await writeFile(file, wrapped + code.slice(from))
  // Each mapped column moves right by the characters inserted at or before it on its line.
  const lineStarts = [0, ...[...code.matchAll(/\n/g)].map(m => m.index + 1)]
  const lineOf = at => {
    let line = 0
    while (line + 1 < lineStarts.length && lineStarts[line + 1] <= at) line++
    return line
  }
  const byLine = new Map()
  for (const { at } of inserts) {
    const line = lineOf(at)
    byLine.set(line, [...(byLine.get(line) ?? []), at - lineStarts[line]])
  }
  const map = JSON.parse(await readFile(`${file}.map`, 'utf8'))
  const shifted = decode(map.mappings).map((segments, line) => {
    const columns = byLine.get(line) ?? []
    return segments.map(([column, ...rest]) => [column + columns.filter(c => c <= column).length, ...rest])
  })
  await writeFile(`${file}.map`, JSON.stringify({ ...map, mappings: encode(shifted) }))
  return functions.length
}
