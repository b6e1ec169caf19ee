import { runSuite } from '../helpers/suite.js'

// The files beside the directories: those of src/cli.ts and src/main.ts.
await runSuite(new URL('./', import.meta.url), false)
