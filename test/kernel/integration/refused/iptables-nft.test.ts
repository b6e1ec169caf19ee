// Refused settings on iptables-nft: the test is in test/helpers/refused.ts.
import { refusedTests } from '../../../helpers/refused.js'

refusedTests('iptables-nft')
