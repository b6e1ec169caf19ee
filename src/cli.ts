// Command-line wiring. yargs parses and writes --help; dispatch is ours (main.ts), because yargs prints the help
// text when an async handler rejects, which would bury the one-line error an operator needs. An init container
// runs with no flags at all (settings come from env), and then yargs is not even loaded: it is a third of a
// bundled start-up (see bench/).
import { ConfigError } from './errors.js'
import { OPTIONS, OPTION_KEYS } from './settings/options.js'
import type { Flags } from './settings/parse.js'

export const COMMANDS = {
  init: 'plan, apply and verify the rules, then exit (the default)',
  plan: 'print the iptables-restore payload init would apply; needs no root and changes nothing',
  verify: 'compare the live rules with the plan, exactly and in order; exit 5 on any drift',
  clean: 'remove every chain and jump init added; other rules stay as they are',
  demo: 'build a throwaway pod and remote host in network namespaces and show real traffic being captured',
} as const

export type Command = keyof typeof COMMANDS | 'help'

export interface CommandLine {
  readonly command: Command
  readonly flags: Flags
}

const isCommand = (name: unknown): name is keyof typeof COMMANDS => typeof name === 'string' && name in COMMANDS

/** parseCommandLine reads argv into a command and the flags given; throws ConfigError on unknown input. */
export const parseCommandLine = async (argv: readonly string[], print: (text: string) => void): Promise<CommandLine> => {
  const [only, ...more] = argv
  if (more.length === 0 && (only === undefined || isCommand(only))) return { command: only ?? 'init', flags: {} }
  const { default: yargs } = await import('yargs')
  let helpShown = false
  const parser = yargs([...argv])
    .scriptName('entrypoint')
    .usage('$0 [command] [flags]\n\nEvery flag can also be given as the environment variable shown; a flag wins.')
    .command(['init', '$0'], COMMANDS.init)
    .exitProcess(false)
    .strict()
    .version(false)
    .wrap(Math.min(120, process.stdout.columns ?? 120))
    .fail((message, error) => {
      throw error ?? new ConfigError('command line', argv.join(' '), message)
    })
  for (const [name, description] of Object.entries(COMMANDS)) if (name !== 'init') parser.command(name, description)
  for (const key of OPTION_KEYS) {
    const spec = OPTIONS[key]
    parser.option(spec.flag, {
      type: 'string',
      requiresArg: false,
      describe: `${spec.help} [env ${spec.env}, default ${spec.default === '' ? 'empty' : JSON.stringify(spec.default)}]`,
    })
  }
  const parsed = parser.parseSync()
  parser.showHelp(text => {
    if (parsed['help']) {
      helpShown = true
      print(`${text}\n`)
    }
  })
  if (helpShown) return { command: 'help', flags: {} }
  const [first, ...extra] = parsed._
  if (extra.length > 0 || (first !== undefined && !isCommand(first))) {
    throw new ConfigError('command line', argv.join(' '), `one command of ${Object.keys(COMMANDS).join(', ')}`)
  }
  const flags = Object.fromEntries(
    OPTION_KEYS.flatMap(key => {
      const value: unknown = parsed[OPTIONS[key].flag]
      return value === undefined ? [] : [[key, String(value)]]
    }),
  ) as Flags
  return { command: isCommand(first) ? first : 'init', flags }
}
