// ISTIO_EXCLUDE_INTERFACES: nothing that arrives on or leaves by these interfaces is captured, in either family.
// Matched by name, so an interface created after init is covered as soon as it has that name.

import type { Rule } from '../types.js'
import type { Feature } from './types.js'

export const excludeInterfaces: Feature = settings => ({
  inboundBypass: settings.excludeInterfaces.map(
    (name): Rule => ({
      purpose: 'inbound-exclude-interface',
      protocol: 'tcp',
      matches: [{ kind: 'in-interface', name }],
      target: { kind: 'return' },
    }),
  ),
  outboundBypass: settings.excludeInterfaces.map(
    (name): Rule => ({
      purpose: 'outbound-exclude-interface',
      protocol: 'tcp',
      matches: [{ kind: 'out-interface', name }],
      target: { kind: 'return' },
    }),
  ),
})
