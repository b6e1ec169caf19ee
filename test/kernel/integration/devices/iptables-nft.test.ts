// The whole path down to the device on iptables-nft: the rows and what each shows are in test/helpers/devices.ts.
import { deviceTests } from '../../../helpers/devices.js'

deviceTests('iptables-nft')
