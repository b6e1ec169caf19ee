import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./webhook/', import.meta.url))
