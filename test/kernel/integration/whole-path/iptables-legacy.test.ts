// The whole-path check on iptables-legacy: the rows and what each shows are in test/helpers/whole-path.ts.
import { wholePathTests } from '../../../helpers/whole-path.js'

wholePathTests('iptables-legacy')
