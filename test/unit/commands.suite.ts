import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./commands/', import.meta.url))
