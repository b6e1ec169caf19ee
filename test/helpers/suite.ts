// One process for many test files: tap starts a Node process per file it runs, and in the unit tier that start
// (tap, its process tracking and coverage, the TypeScript hooks: about 0.8 CPU-s) cost more than most files' own
// tests (docs/performance.md). A suite file imports every *.test.ts under its directory, in name order, so their
// tests run in its process, each still in its own subtests and reported at its own .ts lines. Any file still runs
// alone too: `npx tap test/unit/cni/install.test.ts`.
import { readdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const testsUnder = (dir: string, deep: boolean): string[] =>
  readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap(entry =>
      entry.isDirectory() ? (deep ? testsUnder(`${dir}/${entry.name}`, deep) : []) : entry.name.endsWith('.test.ts') ? [`${dir}/${entry.name}`] : [],
    )

/** Imports every *.test.ts in `dir` (a file: URL), and in its subdirectories unless `deep` is false. */
export const runSuite = async (dir: URL, deep = true): Promise<void> => {
  for (const file of testsUnder(fileURLToPath(dir).replace(/\/$/, ''), deep)) await import(pathToFileURL(file).href)
}
