// The injector's commands (inject, uninject, webhook) from the command line: the operator's settings are checked
// whole before anything is read, so a bad one is exit 2 however many pods would have used it.

import type { Io } from '../io.js'
import { createLogger, type Logger } from '../log.js'
import type { SettingsSource } from '../inject/settings.js'
import { findMisspelt } from '../settings/misspelt.js'
import { parseAgentSettings, parseInjectSettings, parseSettings, parseWebhookSettings } from '../settings/parse.js'
import { UsageError } from '../errors.js'

const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export const runInjector = async (
  command: 'inject' | 'uninject' | 'webhook',
  source: SettingsSource,
  files: readonly string[],
  io: Io,
  earlyLogger: Logger,
): Promise<number> => {
  const settings = parseSettings(source.env, source.flags)
  parseInjectSettings(source.env, source.flags)
  parseAgentSettings(source.env, source.flags)
  const logger = settings.logFormat === 'json' ? createLogger('json', io.out) : earlyLogger
  for (const { variable, suggestion, message } of findMisspelt(source.env)) {
    if (settings.strictEnv) throw new UsageError(`${message} (ISTIO_STRICT_ENV=true)`)
    logger.event('warning', message, { variable, suggestion })
  }
  if (command === 'webhook') {
    const { runWebhook } = await import('./webhook.js')
    return await runWebhook(parseWebhookSettings(source.env, source.flags), source, logger)
  }
  const { readInputs, runInject } = await import('./inject.js')
  runInject(command, await readInputs(files, readStdin), source, io.out, logger)
  return 0
}
