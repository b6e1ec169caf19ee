// The process entry the bundle starts from; kept apart from main.ts so tests can import run() without running it.

// First: it takes the time before the rest of the bundle is evaluated.
import { STARTED_AT } from './started.js'
import { realIo } from './io.js'
import { run } from './main.js'

process.exitCode = await run(process.argv.slice(2), process.env, realIo(STARTED_AT))
