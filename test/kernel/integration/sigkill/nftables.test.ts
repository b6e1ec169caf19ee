// SIGKILL during init on nftables: the rounds and what each shows are in test/helpers/sigkill.ts.
import { sigkillTests } from '../../../helpers/sigkill.js'

sigkillTests('nftables')
