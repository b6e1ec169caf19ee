// The one path from an environment to an exit code, shared by the CLI (main.ts) and the node agent, which runs
// init, verify and clean for each pod in its own process: settings read and checked, the log format chosen, every
// tool run bounded by ISTIO_EXEC_TIMEOUT, misspelt variables warned about, and every failure turned into its exit
// code and message in one place. So a pod's rules come out the same from an init container and from the node.

import { isSidecarError, UsageError } from '../errors.js'
import type { Io } from '../io.js'
import { createLogger, type Logger, type Output } from '../log.js'
import { loadSettings } from '../settings/load.js'
import { classifyEscaped } from '../exec/refusal.js'
import { foreignNames } from '../settings/istio-names.js'
import { findMisspelt } from '../settings/misspelt.js'
import type { Env, Flags } from '../settings/parse.js'
import { readServicesFile } from '../settings/services-file.js'
import type { Settings } from '../settings/types.js'
import { runClean } from './clean.js'
import { runInit } from './init.js'
import { runVerify } from './verify.js'

export interface Session {
  readonly settings: Settings
  /** The Io handed in, its tool runs bounded by ISTIO_EXEC_TIMEOUT. */
  readonly io: Io
  readonly logger: Logger
  /** How long reading and checking the settings took, for init's report. */
  readonly settingsMs: number
}

/** The logger to use before the settings are read: it honours the requested format when it is valid. */
export const earlyLogger = (env: Env, out: Output): Logger => createLogger(env['ISTIO_LOG_FORMAT']?.trim() === 'json' ? 'json' : 'text', out)

/** openSession reads the settings and sets up what every command uses; throws ConfigError or UsageError. */
export const openSession = async (env: Env, flags: Flags, io: Io): Promise<Session> => {
  const settingsStart = io.now()
  const settings = await loadSettings(env, flags, readServicesFile)
  const settingsMs = Math.round((io.now() - settingsStart) * 10) / 10
  const logger = createLogger(settings.logFormat, io.out)
  const timeoutMs = settings.execTimeout * 1000
  const bounded: Io = { ...io, exec: (file, args, input, options) => io.exec(file, args, input, { timeoutMs, ...options }) }
  // Istio's names are not typos of ours, and strict mode is about typos: a warning each, never a silent difference.
  for (const { variable, message } of foreignNames(env)) logger.event('warning', message, { variable })
  for (const { variable, suggestion, message } of findMisspelt(env)) {
    if (settings.strictEnv) throw new UsageError(`${message} (ISTIO_STRICT_ENV=true)`)
    logger.event('warning', message, { variable, suggestion })
  }
  return { settings, io: bounded, logger, settingsMs }
}

/** reportFailure says what went wrong and returns the exit code: a SidecarError's own, 3 for a refusal, 1 (with the stack) for a bug. */
export const reportFailure = (escaped: unknown, logger: Logger, out: Output): number => {
  // A refusal that reached here unclassified (EACCES reading /proc, a tool's EPERM) is named, not called a bug.
  const error = classifyEscaped(escaped)
  if (!isSidecarError(error)) {
    out.error(`sidecar-redirect: unexpected failure (a bug; please report it):\n${error instanceof Error ? error.stack : String(error)}\n`)
    return 1
  }
  const cause = error.cause instanceof Error ? [`cause: ${error.cause.message.split('\n')[0]}`] : []
  logger.error(error.code, error.message, [...error.details, ...cause])
  return error.exitCode
}

// A Record, so a rule command cannot be added without its runner.
const RULE_COMMANDS = {
  init: (s: Session) => runInit(s.settings, s.io, s.logger, { settingsMs: s.settingsMs }),
  verify: (s: Session) => runVerify(s.settings, s.io, s.logger),
  clean: (s: Session) => runClean(s.settings, s.io, s.logger),
} as const satisfies Record<string, (session: Session) => Promise<void>>

export type RuleCommand = keyof typeof RULE_COMMANDS

export const isRuleCommand = (command: string): command is RuleCommand => Object.hasOwn(RULE_COMMANDS, command)

/** runRuleCommand runs init, verify or clean from `env` and `flags` with `io`; resolves to the exit code, never throws. */
export const runRuleCommand = async (command: RuleCommand, env: Env, flags: Flags, io: Io): Promise<number> => {
  let logger = earlyLogger(env, io.out)
  try {
    const session = await openSession(env, flags, io)
    logger = session.logger
    await RULE_COMMANDS[command](session)
    return 0
  } catch (error) {
    return reportFailure(error, logger, io.out)
  }
}
