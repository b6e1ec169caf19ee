// One process for many test files: tap starts a Node process per file it runs, and in the unit tier that start
// (tap, its process tracking and coverage, the TypeScript hooks: about 0.8 CPU-s) cost more than most files' own
// tests (docs/performance.md). A suite file imports every *.test.ts under its directory, in name order, so their
// tests run in its process, each still in its own subtests and reported at its own .ts lines. Any file still runs
// alone too: `npx tap test/unit/cni/install.test.ts`.
import { readdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { byCodeUnits } from '../../src/order.js'

/** The *.test.ts files in `dir` (a path), in name order, and those of its subdirectories unless `deep` is false. */
export const testsUnder = (dir: string, deep = true): string[] =>
  readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => byCodeUnits(a.name, b.name))
    .flatMap(entry =>
      entry.isDirectory() ? (deep ? testsUnder(`${dir}/${entry.name}`, deep) : []) : entry.name.endsWith('.test.ts') ? [`${dir}/${entry.name}`] : [],
    )

/** Imports every *.test.ts in `dir` (a file: URL), and in its subdirectories unless `deep` is false. */
export const runSuite = async (dir: URL, deep = true): Promise<void> => {
  const files = testsUnder(fileURLToPath(dir).replace(/\/$/, ''), deep)
  let imported = 0
  let finish = (): void => undefined
  const finished = new Promise<void>(resolve => {
    finish = resolve
  })
  // Holds tap's root test open until every file is imported, and runs first: tap ends the root once nothing is
  // queued, and where a file registered a top-level teardown it ends it between two imports, so a later file's
  // tests would be refused with only a line on stderr, and the suite would pass without them.
  t.test('the suite imports each of its test files', async t => {
    await finished
    t.equal(imported, files.length, `${imported} of ${files.length} imported`)
  })
  try {
    for (const file of files) {
      await import(pathToFileURL(file).href)
      imported += 1
    }
  } finally {
    finish()
  }
}
