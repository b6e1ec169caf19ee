import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./project/', import.meta.url))
