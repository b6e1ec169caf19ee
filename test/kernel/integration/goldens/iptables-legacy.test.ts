// The golden plans on iptables-legacy: the test is in test/helpers/goldens.ts.
import { goldenTests } from '../../../helpers/goldens.js'

goldenTests('iptables-legacy')
