// The unit tier runs its test files through suites (test/helpers/suite.ts), one process per directory: a test file
// no suite reaches would never run in CI, and one reached twice would run twice.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { untapped } from '../../helpers/processes.js'
import { testsUnder } from '../../helpers/suite.js'

const UNIT = new URL('../', import.meta.url).pathname.replace(/\/$/, '')

t.test('every directory of unit tests has its suite, and every suite runs its own directory', async t => {
  const entries = readdirSync(UNIT, { withFileTypes: true })
  const dirs = entries.filter(e => e.isDirectory() && testsUnder(`${UNIT}/${e.name}`).length > 0).map(e => e.name)
  const suites = entries.filter(e => e.isFile() && e.name.endsWith('.suite.ts')).map(e => e.name)
  for (const dir of dirs) t.ok(suites.includes(`${dir}.suite.ts`), `test/unit/${dir}/ has test/unit/${dir}.suite.ts`)
  for (const suite of suites) {
    const text = readFileSync(`${UNIT}/${suite}`, 'utf8')
    const dir = suite.replace(/\.suite\.ts$/, '')
    if (dir === 'top') {
      t.match(text, /runSuite\(new URL\('\.\/', import\.meta\.url\), false\)/, 'top.suite.ts runs the files beside the directories, no deeper')
    } else {
      t.ok(dirs.includes(dir), `${suite} names a directory of tests`)
      t.match(text, new RegExp(`runSuite\\(new URL\\('\\./${dir}/', import\\.meta\\.url\\)\\)`), `${suite} runs test/unit/${dir}/`)
    }
  }
  const beside = entries.filter(e => e.isFile() && e.name.endsWith('.test.ts'))
  if (beside.length > 0) t.ok(suites.includes('top.suite.ts'), 'the test files beside the directories have top.suite.ts')
})

t.test('the tier runs the suites, not the files they import', async t => {
  const { include } = parse(readFileSync(`${UNIT}/taprc.yaml`, 'utf8')) as { include: string[] }
  t.ok(include.includes('test/unit/*.suite.ts'), 'the suites are included')
  t.notOk(
    include.some(glob => glob.startsWith('test/unit/') && glob.endsWith('.test.ts')),
    'no unit test file is included on its own (it would run twice)',
  )
})

t.test('a file that loads after the one before it has finished still runs its tests', async t => {
  // The fixture's first file registers a top-level teardown, after which tap ends its root test as soon as nothing
  // is queued; its second file takes 300 ms to load. Without the suite holding the root open, the second file's
  // test was refused with a line on stderr and the run still passed.
  const root = new URL('../../../', import.meta.url).pathname
  const [file, ...args] = untapped(process.execPath, '--import=./scripts/test/ts-import.mjs', 'test/fixtures/suite/late.suite.ts')
  const run = spawnSync(file, args, { cwd: root, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env['PATH'] } })
  t.equal(run.status, 0, 'the suite passes', { stderr: run.stderr })
  t.match(run.stdout, /^ {4}ok 1 - b ran$/m, "the late file's test ran")
  t.match(run.stdout, /ok 1 - 2 of 2 imported/, 'both files were imported')
  t.notMatch(run.stderr, /cannot create subtest/, 'no test was refused')
})
