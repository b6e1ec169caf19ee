// The process entry the bundle starts from; kept apart from main.ts so tests can import run() without running it.

// First: it takes the time before the rest of the bundle is evaluated.
import { STARTED_AT } from './started.js'
import { startHeadStart } from './backend/head-start.js'
import { realExec } from './exec/exec.js'
import { realFs, realIo } from './io.js'

const argv = process.argv.slice(2)
// A plain init (the image's default command) starts its lock and first reads now, and the rest of the bundle loads
// while they run (see head-start.ts). With flags the settings are only known once yargs has loaded: no head start.
const headStart = argv.length === 0 || (argv.length === 1 && argv[0] === 'init') ? startHeadStart(process.env, realExec, realFs) : undefined
// Loading a module never yields to the event loop: so the head start is first let take the lock and start its reads
// (all of it due at once on an uncontended namespace), and only then does the rest of the bundle load.
if (headStart) await new Promise(resolve => setImmediate(resolve))
const { run } = await import('./main.js')
process.exitCode = await run(argv, process.env, realIo(STARTED_AT, headStart))
