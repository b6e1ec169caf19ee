import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./plan/', import.meta.url))
