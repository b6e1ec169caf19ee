// Refused settings on iptables-legacy: the test is in test/helpers/refused.ts.
import { refusedTests } from '../../../helpers/refused.js'

refusedTests('iptables-legacy')
