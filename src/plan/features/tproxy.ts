// ISTIO_INBOUND_INTERCEPTION_MODE=TPROXY: inbound TCP reaches the proxy without NAT, so its accepted socket's local
// address is the original destination and it may connect on to the app from the client's own address. Beside the
// rules this needs policy routing: marked packets look up a table whose one route delivers everything locally.

import type { Settings } from '../../settings/types.js'
import { TPROXY_RULE_PRIORITY } from '../owned.js'
import type { LocalRouting } from '../types.js'
import type { Feature } from './types.js'

/** The policy routing the settings name, whatever the mode: clean removes it even after a switch back to REDIRECT. */
export const tproxyRouting = (settings: Settings): LocalRouting => ({
  priority: TPROXY_RULE_PRIORITY,
  mark: settings.inboundTproxyMark,
  table: settings.inboundTproxyRouteTable,
})

export const tproxy: Feature = settings => (settings.inboundInterceptionMode === 'TPROXY' ? { routing: tproxyRouting(settings) } : {})
