import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./cni/', import.meta.url))
