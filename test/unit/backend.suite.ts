import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./backend/', import.meta.url))
