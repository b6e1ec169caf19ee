import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./verify/', import.meta.url))
