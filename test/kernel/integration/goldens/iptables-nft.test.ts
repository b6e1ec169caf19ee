// The golden plans on iptables-nft: the test is in test/helpers/goldens.ts.
import { goldenTests } from '../../../helpers/goldens.js'

goldenTests('iptables-nft')
