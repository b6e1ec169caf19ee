// The entry: parse, dispatch, and the one place errors become exit codes. Nothing below here calls process.exit.

import { parseCommandLine } from './cli.js'
import { runClean } from './commands/clean.js'
import { runInit } from './commands/init.js'
import { runPlan } from './commands/plan.js'
import { runVerify } from './commands/verify.js'
import { isSidecarError, UsageError } from './errors.js'
import type { IstioAction } from './commands/istio-iptables.js'
import type { Io } from './io.js'
import { createLogger } from './log.js'
import { loadSettings } from './settings/load.js'
import { findMisspelt } from './settings/misspelt.js'
import { readServicesFile } from './settings/services-file.js'
import {
  parseAgentSettings,
  parseClassifierSettings,
  parseCniInstallSettings,
  parseNodeAgentSettings,
  parseValidateSettings,
  type Env,
} from './settings/parse.js'

/** Istio's command line, alone (`istio-iptables ...`) or after one of our commands (`verify istio-iptables ...`). */
const istioCommandLine = (argv: readonly string[]): { action: IstioAction; rest: readonly string[] } | undefined => {
  const [first, second, ...rest] = argv
  if (first === 'istio-iptables') return { action: 'run', rest: argv.slice(1) }
  if ((first === 'plan' || first === 'verify' || first === 'clean') && second === 'istio-iptables') return { action: first, rest }
  return undefined
}

export const run = async (argv: readonly string[], env: Env, ioIn: Io): Promise<number> => {
  // Istio's mode has its own command line, environment and exit codes: none of ours applies to it.
  const istio = istioCommandLine(argv)
  if (istio) {
    const { runIstioIptables } = await import('./commands/istio-iptables.js')
    return runIstioIptables(istio.rest, env, ioIn, istio.action)
  }
  let io = ioIn
  // Errors found before the settings are read still honour the requested format when it is valid.
  let logger = createLogger(env['ISTIO_LOG_FORMAT']?.trim() === 'json' ? 'json' : 'text', io.out)
  try {
    const { command, flags, rest, files } = await parseCommandLine(argv, io.out.write)
    if (command === 'help') return 0
    if (command === 'inject' || command === 'uninject' || command === 'webhook') {
      // They build pods rather than rules: a file a setting names is the pod's to read, not the injector's.
      const { runInjector } = await import('./commands/injector.js')
      return await runInjector(command, { env, flags }, files, io, logger)
    }
    const settingsStart = io.now()
    const settings = await loadSettings(env, flags, readServicesFile)
    const settingsMs = Math.round((io.now() - settingsStart) * 10) / 10
    logger = createLogger(settings.logFormat, io.out)
    const timeoutMs = settings.execTimeout * 1000
    io = { ...ioIn, exec: (file, args, input, options) => ioIn.exec(file, args, input, { timeoutMs, ...options }) }
    for (const { variable, suggestion, message } of findMisspelt(env)) {
      if (settings.strictEnv) throw new UsageError(`${message} (ISTIO_STRICT_ENV=true)`)
      logger.event('warning', message, { variable, suggestion })
    }
    switch (command) {
      case 'init':
        await runInit(settings, io, logger, { settingsMs })
        break
      case 'plan':
        await runPlan(settings, io)
        break
      case 'verify':
        await runVerify(settings, io, logger)
        break
      case 'clean':
        await runClean(settings, io, logger)
        break
      case 'demo': {
        const { runDemo } = await import('./commands/demo.js')
        await runDemo(settings, io, logger)
        break
      }
      case 'envoy-config': {
        const { runEnvoyConfig } = await import('./commands/envoy-config.js')
        runEnvoyConfig(settings, io.out)
        break
      }
      case 'classifier': {
        const { runClassifier } = await import('./commands/classifier.js')
        return await runClassifier(settings, parseClassifierSettings(env, flags), parseAgentSettings(env, flags), io, logger)
      }
      case 'node-agent': {
        const { runNodeAgent } = await import('./commands/node-agent.js')
        return await runNodeAgent(settings, parseNodeAgentSettings(env, flags), logger)
      }
      case 'cni-install': {
        const { runCniInstall } = await import('./commands/cni-install.js')
        return await runCniInstall(parseCniInstallSettings(env, flags), logger)
      }
      case 'ready': {
        const { runReady } = await import('./commands/ready.js')
        await runReady(settings, parseAgentSettings(env, flags), io.now, logger)
        break
      }
      case 'validate': {
        const { runValidate } = await import('./commands/validate.js')
        await runValidate(settings, env, flags, parseValidateSettings(env, flags), io, logger)
        break
      }
      case 'hold': {
        const { runHold } = await import('./commands/hold.js')
        return await runHold(logger)
      }
      case 'run': {
        const { runAgent } = await import('./commands/run.js')
        return await runAgent(settings, parseAgentSettings(env, flags), rest, io, logger)
      }
      case 'istio-iptables':
        // Reached only when our flags came first: Istio's command line starts with its name.
        throw new UsageError("istio-iptables takes only Istio's flags, after it: entrypoint istio-iptables -p 15001 ...")
    }
    return 0
  } catch (error) {
    if (!isSidecarError(error)) {
      io.out.error(`sidecar-redirect: unexpected failure (a bug; please report it):\n${error instanceof Error ? error.stack : String(error)}\n`)
      return 1
    }
    const cause = error.cause instanceof Error ? [`cause: ${error.cause.message.split('\n')[0]}`] : []
    logger.error(error.code, error.message, [...error.details, ...cause])
    return error.exitCode
  }
}
