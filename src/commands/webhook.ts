// webhook: the mutating admission webhook. Serves until SIGTERM or SIGINT, then finishes the requests in flight.
// Every decision is one log line with its fields (JSON with ISTIO_LOG_FORMAT=json, key=value in text).

import type { SettingsSource } from '../inject/settings.js'
import type { Logger } from '../log.js'
import type { WebhookSettings } from '../settings/types.js'
import { startWebhook } from '../webhook/server.js'

export const runWebhook = async (settings: WebhookSettings, source: SettingsSource, logger: Logger): Promise<number> => {
  const webhook = await startWebhook(settings, source, (event, message, fields) => logger.event(event, message, fields))
  const signal = await new Promise<NodeJS.Signals>(resolve => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
  })
  await webhook.close()
  logger.event('stopped', `webhook stopped on ${signal}`)
  return 0
}
