// The entry: parse, dispatch, and turn every failure into its exit code (commands/rules.ts). Nothing below here calls process.exit.

import { parseCommandLine } from './cli.js'
import { runPlan } from './commands/plan.js'
import { earlyLogger, isRuleCommand, openSession, reportFailure, runRuleCommand } from './commands/rules.js'
import type { IstioAction } from './commands/istio-iptables.js'
import { UsageError } from './errors.js'
import type { Io } from './io.js'
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
        await runPlan(settings, io)
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
    return reportFailure(error, logger, ioIn.out)
  }
}
