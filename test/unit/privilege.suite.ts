import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./privilege/', import.meta.url))
