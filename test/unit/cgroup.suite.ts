import { runSuite } from '../helpers/suite.js'

await runSuite(new URL('./cgroup/', import.meta.url))
