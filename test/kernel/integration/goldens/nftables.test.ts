// The golden plans on nftables: the test is in test/helpers/goldens.ts.
import { goldenTests } from '../../../helpers/goldens.js'

goldenTests('nftables')
