import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./settings/', import.meta.url))
