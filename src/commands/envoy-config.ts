// envoy-config: the Envoy snippet that marks every upstream connection, so a user of the mark method need not
// look up option numbers. SO_MARK must be set before the socket connects, hence STATE_PREBIND.

import type { Output } from '../log.js'
import type { Settings } from '../settings/types.js'
import { hex } from '../text.js'

const SOL_SOCKET = 1
const SO_MARK = 36

/** renderEnvoyConfig returns the YAML snippet (or JSON, with ISTIO_LOG_FORMAT=json). Pure. */
export const renderEnvoyConfig = (settings: Settings): string => {
  const mark = settings.mark.value
  const option = {
    description: 'sidecar-redirect: SO_MARK for the mark method',
    level: SOL_SOCKET,
    name: SO_MARK,
    int_value: mark,
    state: 'STATE_PREBIND',
  }
  if (settings.logFormat === 'json') return `${JSON.stringify({ upstream_bind_config: { socket_options: [option] } })}\n`
  return [
    `# Marks the proxy's upstream connections with SO_MARK ${hex(mark)} (ISTIO_SO_MARK), which the mark method's`,
    "# rules exempt from capture. Put it in a Cluster, or in the bootstrap's cluster_manager to cover every cluster.",
    '# The proxy needs CAP_NET_ADMIN to set it: `entrypoint run` gives it exactly that in the mark method.',
    'upstream_bind_config:',
    '  socket_options:',
    `  - description: "${option.description}"`,
    `    level: ${SOL_SOCKET}        # SOL_SOCKET`,
    `    name: ${SO_MARK}        # SO_MARK`,
    `    int_value: ${mark}`,
    '    state: STATE_PREBIND',
    '',
  ].join('\n')
}

export const runEnvoyConfig = (settings: Settings, out: Output): void => out.write(renderEnvoyConfig(settings))
