import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./classifier/', import.meta.url))
