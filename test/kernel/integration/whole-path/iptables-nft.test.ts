// The whole-path check on iptables-nft: the rows and what each shows are in test/helpers/whole-path.ts.
import { wholePathTests } from '../../../helpers/whole-path.js'

wholePathTests('iptables-nft')
