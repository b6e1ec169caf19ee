import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./exec/', import.meta.url))
