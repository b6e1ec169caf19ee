import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./net/', import.meta.url))
