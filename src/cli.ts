// Command-line wiring. yargs parses and writes --help; dispatch is ours (main.ts), because yargs prints the help
// text when an async handler rejects, which would bury the one-line error an operator needs. An init container
// runs with no flags at all (settings come from env), and then yargs is not even loaded: it is a third of a
// bundled start-up (see bench/).
import { UsageError } from './errors.js'
import { INJECT_OPTIONS, WEBHOOK_OPTIONS } from './settings/inject-options.js'
import {
  AGENT_OPTIONS,
  CLASSIFIER_OPTIONS,
  CNI_INSTALL_OPTIONS,
  NODE_AGENT_OPTIONS,
  OPTIONS,
  type OptionSpec,
  VALIDATE_OPTIONS,
} from './settings/options.js'
import type { Flags } from './settings/parse.js'

export const COMMANDS = {
  init: 'plan, apply and verify the rules, then exit (the default)',
  plan: 'print what init would write with the chosen backend (ipset and iptables-restore payloads, or nft); needs no root and changes nothing',
  verify: 'compare the live rules with the plan, exactly and in order; exit 5 on any drift',
  clean: 'remove every chain and jump init added; other rules stay as they are',
  demo: 'build a throwaway pod and remote host in network namespaces and show real traffic being captured',
  run: 'the proxy agent: run [flags] -- PROXY_COMMAND [ARGS...] starts the proxy as its user with least privilege',
  validate: 'prove capture from inside the pod with no privilege: an app connection, as this UID, must reach the proxy port (exit 9 if not)',
  ready: 'exit 0 once the proxy accepts connections on ISTIO_PROXY_PORT, waiting up to ISTIO_READY_SECONDS (a startup probe)',
  'envoy-config': 'print the Envoy socket_options that mark upstream connections with ISTIO_SO_MARK (method mark)',
  'cni-install':
    "the CNI plugin's installer on the node: copies the plugin into the host's CNI bin dir, chains it last in the primary conflist, keeps it chained, and removes both on SIGTERM or SIGINT",
  'node-agent': 'the node side of the CNI plugin: serves the requests dist/cni/sidecar-redirect forwards on ISTIO_NODE_AGENT_SOCKET',
  classifier: 'the node-level net_cls classifier: puts proxy agents that ask on its socket into their net_cls group',
  inject:
    'inject [-f FILE|DIR|-]...: add the capture init container (or validate) and your proxy to every pod template of the Kubernetes YAML or JSON read; other objects pass through',
  uninject: 'uninject [-f FILE|DIR|-]...: take away exactly what inject added',
  webhook: 'the mutating admission webhook: injects pods of opted-in namespaces over HTTPS (AdmissionReview v1)',
  hold: "the classic layout's hold container: its postStart (ready) holds the app until the proxy listens; then it idles",
  'istio-iptables':
    "Istio's init command with Istio's flags, environment and exit codes, verified as init is; plan, verify and clean take it too (`verify istio-iptables ...`); see istio-iptables --help",
} as const

export type Command = keyof typeof COMMANDS | 'help'

export interface CommandLine {
  readonly command: Command
  readonly flags: Flags
  /** What follows `--`: the proxy command for `run`. */
  readonly rest: readonly string[]
  /** inject and uninject: the `-f` arguments, in order. */
  readonly files: readonly string[]
}

// Not a setting: where inject and uninject read their manifests from, as kubectl's -f.
const FILE_FLAG = 'filename'
const FILE_COMMANDS: readonly string[] = ['inject', 'uninject']

type Table = { readonly [key: string]: OptionSpec<unknown> }

// What cni-install and hold read of the capture settings: only how to log.
const LOGGING: Table = { logFormat: OPTIONS.logFormat, strictEnv: OPTIONS.strictEnv }

// The option tables each command reads (main.ts): its --help lists their flags and no other, and any other flag
// is refused rather than silently ignored. The compiler keeps this complete as COMMANDS grows.
const COMMAND_OPTIONS: { readonly [C in keyof typeof COMMANDS]: readonly Table[] } = {
  init: [OPTIONS],
  plan: [OPTIONS],
  verify: [OPTIONS],
  clean: [OPTIONS],
  demo: [OPTIONS],
  run: [OPTIONS, AGENT_OPTIONS],
  validate: [OPTIONS, VALIDATE_OPTIONS],
  ready: [OPTIONS, AGENT_OPTIONS],
  'envoy-config': [OPTIONS],
  'cni-install': [LOGGING, CNI_INSTALL_OPTIONS],
  'node-agent': [OPTIONS, NODE_AGENT_OPTIONS],
  classifier: [OPTIONS, CLASSIFIER_OPTIONS, AGENT_OPTIONS],
  inject: [OPTIONS, INJECT_OPTIONS, AGENT_OPTIONS],
  uninject: [OPTIONS, INJECT_OPTIONS, AGENT_OPTIONS],
  webhook: [OPTIONS, INJECT_OPTIONS, AGENT_OPTIONS, WEBHOOK_OPTIONS],
  hold: [LOGGING],
  // Istio's own flags, after its name (main.ts hands them to its parser before ours runs); none of ours.
  'istio-iptables': [],
}

const SPECS: [string, OptionSpec<unknown>][] = [
  ...Object.entries(OPTIONS),
  ...Object.entries(AGENT_OPTIONS),
  ...Object.entries(CLASSIFIER_OPTIONS),
  ...Object.entries(NODE_AGENT_OPTIONS),
  ...Object.entries(CNI_INSTALL_OPTIONS),
  ...Object.entries(VALIDATE_OPTIONS),
  ...Object.entries(INJECT_OPTIONS),
  ...Object.entries(WEBHOOK_OPTIONS),
]

const isCommand = (name: unknown): name is keyof typeof COMMANDS => typeof name === 'string' && name in COMMANDS

/** The flags `command` takes, each once (one flag may serve two tables: --classifier-socket). */
export const commandFlags = (command: keyof typeof COMMANDS): OptionSpec<unknown>[] => [
  ...new Map(COMMAND_OPTIONS[command].flatMap(table => Object.values(table)).map(spec => [spec.flag, spec])).values(),
]

const ALWAYS = ['_', '$0', '--', 'help', 'h']

// yargs' own strict mode says "Unknown argument: bogus" for a command too, and does not list what is valid.
const refuseUnknown = (parsed: { readonly _: readonly (string | number)[]; readonly [key: string]: unknown }): void => {
  const [first, second] = parsed._.map(String)
  if (first !== undefined && !isCommand(first)) {
    throw new UsageError(`unknown command ${JSON.stringify(first)}; commands: ${Object.keys(COMMANDS).join(', ')}`)
  }
  const command = first ?? 'init'
  if (second !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(second)} after the command ${command}; one command at a time`)
  if (parsed[FILE_FLAG] !== undefined && !FILE_COMMANDS.includes(command)) {
    throw new UsageError(`-f/--${FILE_FLAG} is a flag of ${FILE_COMMANDS.join(' and ')} only`)
  }
  const mine = new Set(commandFlags(command).map(spec => spec.flag))
  const unknown = Object.keys(parsed).find(key => !ALWAYS.includes(key) && key !== FILE_FLAG && key !== 'f' && !mine.has(key))
  if (unknown === undefined) return
  const given = JSON.stringify(`${unknown.length === 1 ? '-' : '--'}${unknown}`)
  const owners = Object.keys(COMMANDS).filter(name => commandFlags(name as keyof typeof COMMANDS).some(spec => spec.flag === unknown))
  throw new UsageError(
    owners.length > 0
      ? `${given} is not a flag of ${command} (it is a flag of ${owners.join(', ')}); \`${command} --help\` lists ${command}'s flags`
      : `unknown flag ${given}; ${command}'s flags: ${[...mine].map(f => `--${f}`).join(', ')}, --help`,
  )
}

const isHelp = (arg: string): boolean => arg === '--help' || arg === '-h'

// yargs lays out a command's whole help (every flag through cliui, wrap-ansi and string-width) each time the command
// runs, and keeps it for its own failure message. Failures here are ours (`.fail` throws), so without --help that
// text is never printed: laying it out was most of a parse with flags (docs/performance.md).
interface YargsInternals {
  getInternalMethods(): { getUsageInstance(): { cacheHelpMessage(): void } }
}
const skipHelpLayout = (parser: unknown): void => {
  ;(parser as YargsInternals).getInternalMethods().getUsageInstance().cacheHelpMessage = () => undefined
}

/** parseCommandLine reads argv into a command and the flags given; throws ConfigError on unknown input. */
export const parseCommandLine = async (argv: readonly string[], print: (text: string) => void): Promise<CommandLine> => {
  const [only, ...more] = argv
  if (more.length === 0 && (only === undefined || isCommand(only))) return { command: only ?? 'init', flags: {}, rest: [], files: [] }
  const { default: yargs } = await import('yargs')
  // yargs takes a lone "-" for a positional argument; as kubectl's, "-f -" means stdin.
  const args = argv.flatMap((arg, i) =>
    arg === '-' && ['-f', `--${FILE_FLAG}`].includes(argv[i - 1] ?? '')
      ? []
      : ['-f', `--${FILE_FLAG}`].includes(arg) && argv[i + 1] === '-'
        ? [`--${FILE_FLAG}=-`]
        : [arg],
  )
  // Help without a command is the list of commands; `COMMAND --help` lists that command's flags and no other.
  const beforeDashes = args.includes('--') ? args.slice(0, args.indexOf('--')) : args
  const helpOnly = beforeDashes.some(isHelp) && !beforeDashes.some(isCommand)
  const parser = yargs(args)
    .scriptName('entrypoint')
    .usage(
      '$0 [command] [flags]\n\nWithout a command it runs init. Every flag can also be given as the environment variable shown; a flag wins.\n`$0 COMMAND --help` lists the flags of that command.',
    )
    .exitProcess(false)
    // yargs' own --help prints and then we would print again: help is ours (one print, to the given output).
    .help(false)
    .option('help', { alias: 'h', type: 'boolean', describe: 'show help (with a command: its flags only)' })
    .parserConfiguration({ 'populate--': true, 'camel-case-expansion': false })
    .version(false)
    .wrap(Math.min(120, process.stdout.columns ?? 120))
    .fail((message, error) => {
      // yargs' own complaints (its YError) are about the command line, like ours.
      throw error !== undefined && error.name !== 'YError' ? error : new UsageError(`command line ${JSON.stringify(argv.join(' '))}: ${message}`)
    })
  for (const [name, description] of Object.entries(COMMANDS) as [keyof typeof COMMANDS, string][]) {
    parser.command(name === 'init' && !helpOnly ? ['init', '$0'] : name, description, command => {
      if (FILE_COMMANDS.includes(name)) {
        command.option(FILE_FLAG, {
          alias: 'f',
          type: 'string',
          array: true,
          requiresArg: true,
          describe: 'a file, a directory (its *.yaml, *.yml, *.json) or - for stdin; repeatable',
        })
      } else {
        // Parsed (not listed) for every other command too, so that its -f is refused by name.
        command.string(FILE_FLAG).array(FILE_FLAG).alias('f', FILE_FLAG)
      }
      for (const spec of commandFlags(name)) {
        command.option(spec.flag, {
          type: 'string',
          requiresArg: false,
          describe: `${spec.help} [env ${spec.env}, default ${spec.default === '' ? 'empty' : JSON.stringify(spec.default)}]`,
        })
      }
      return command
    })
  }
  // Flags of other commands are still parsed as text (not numbers), so the refusal can quote them as given.
  for (const [, spec] of SPECS) parser.string(spec.flag)
  if (!beforeDashes.some(isHelp)) skipHelpLayout(parser)
  const parsed = parser.parseSync()
  if (parsed['help'] === true) {
    parser.showHelp(help => print(`${help}\n`))
    return { command: 'help', flags: {}, rest: [], files: [] }
  }
  refuseUnknown(parsed)
  const [first] = parsed._
  const flags: Flags = Object.fromEntries(
    SPECS.flatMap(([key, spec]) => {
      const value: unknown = parsed[spec.flag]
      return value === undefined ? [] : [[key, String(value)]]
    }),
  )
  const rest = ((parsed['--'] ?? []) as unknown[]).map(String)
  const files = ((parsed[FILE_FLAG] ?? []) as unknown[]).map(String)
  return { command: isCommand(first) ? first : 'init', flags, rest, files }
}
