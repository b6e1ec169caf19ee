import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./inject/', import.meta.url))
