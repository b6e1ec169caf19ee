import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./path/', import.meta.url))
