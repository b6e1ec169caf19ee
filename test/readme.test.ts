// The README is the front page: short, and starting with the two set-up commands CI and users run. Its reference
// tables moved to docs/reference.md, which test/docs.test.ts checks against the code.
import { readFileSync } from 'node:fs'
import t from 'tap'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('the README starts with the two set-up commands, and they exist', async t => {
  const first = readme.split('\n').slice(0, 6).join('\n')
  t.match(first, /^bash scripts\/demo\.sh/m)
  t.match(first, /^bash \.ci\/run/m)
})

t.test('the README stays short: at most 150 lines', async t => {
  const lines = readme.trimEnd().split('\n').length
  t.ok(lines <= 150, `${lines} lines`)
})
