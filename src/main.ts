// The entry: parse, dispatch, and turn every failure into its exit code (commands/rules.ts). Nothing below here calls process.exit.

import { parseCommandLine } from './cli.js'
import { runPlan } from './commands/plan.js'
import { earlyLogger, isRuleCommand, openSession, reportFailure, runRuleCommand } from './commands/rules.js'
import type { Io } from './io.js'
import {
  parseAgentSettings,
  parseClassifierSettings,
  parseCniInstallSettings,
  parseNodeAgentSettings,
  parseValidateSettings,
  type Env,
} from './settings/parse.js'

export const run = async (argv: readonly string[], env: Env, ioIn: Io): Promise<number> => {
  let logger = earlyLogger(env, ioIn.out)
  try {
    const { command, flags, rest, files } = await parseCommandLine(argv, ioIn.out.write)
    if (command === 'help') return 0
    if (command === 'inject' || command === 'uninject' || command === 'webhook') {
      // They build pods rather than rules: a file a setting names is the pod's to read, not the injector's.
      const { runInjector } = await import('./commands/injector.js')
      return await runInjector(command, { env, flags }, files, ioIn, logger)
    }
    // init, verify and clean: the path the node agent runs for each pod too.
    if (isRuleCommand(command)) return await runRuleCommand(command, env, flags, ioIn)
    const session = await openSession(env, flags, ioIn)
    const { settings, io } = session
    logger = session.logger
    switch (command) {
      case 'plan':
        runPlan(settings, io.out)
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
    }
    return 0
  } catch (error) {
    return reportFailure(error, logger, ioIn.out)
  }
}
