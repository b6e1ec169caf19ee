// The README is the front page: short, and starting with the two set-up commands CI and users run. Its reference
// tables moved to docs/reference.md, which test/unit/project/docs.test.ts checks against the code.
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')

t.test('the README starts with the two set-up commands, and they exist', async t => {
  const first = readme.split('\n').slice(0, 6).join('\n')
  for (const script of ['scripts/demo.sh', '.ci/run']) {
    t.match(first, new RegExp(`^bash ${script.replaceAll('.', '\\.')} `, 'm'), script)
    t.ok(existsSync(new URL(`../../../${script}`, import.meta.url)), `${script} exists`)
  }
})

t.test('the README stays short: at most 150 lines', async t => {
  const lines = readme.trimEnd().split('\n').length
  t.ok(lines <= 150, `${lines} lines`)
})
