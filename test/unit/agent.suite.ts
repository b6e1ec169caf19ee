import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./agent/', import.meta.url))
