// SIGKILL during init on iptables-legacy: the rounds and what each shows are in test/helpers/sigkill.ts.
import { sigkillTests } from '../../../helpers/sigkill.js'

sigkillTests('iptables-legacy')
