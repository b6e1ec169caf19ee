// The process entry the bundle starts from; kept apart from main.ts so tests can import run() without running it.

// First: it takes the time before the rest of the bundle is evaluated.
import { STARTED_AT } from './started.js'
import { realIo } from './io.js'
import { run } from './main.js'
import { passOnCapabilities } from './privilege/inherit.js'

// A reader that went away (`--help | head -1`) is not a failure of ours: what it did not read it did not want.
// Without a listener Node throws EPIPE from the stream, with a stack, after the work is done.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
  })
}

// A non-root init with file capabilities passes them on to the tools it starts (privilege/inherit.ts).
const passedOn = ((): boolean => {
  try {
    passOnCapabilities()
    return true
  } catch (error) {
    process.stderr.write(`sidecar-redirect: ${(error as Error).message}\n`)
    return false
  }
})()

process.exitCode = passedOn ? await run(process.argv.slice(2), process.env, realIo(STARTED_AT)) : 3
