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

const FLAGS = new Set(SPECS.map(([, spec]) => spec.flag))

// yargs' own strict mode says "Unknown argument: bogus" for a command too, and does not list what is valid.
const refuseUnknown = (parsed: { readonly _: readonly (string | number)[]; readonly [key: string]: unknown }): void => {
  const [first, second] = parsed._.map(String)
  if (first !== undefined && !isCommand(first)) {
    throw new UsageError(`unknown command ${JSON.stringify(first)}; commands: ${Object.keys(COMMANDS).join(', ')}`)
  }
  if (second !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(second)} after the command ${first}; one command at a time`)
  if (parsed[FILE_FLAG] !== undefined && !FILE_COMMANDS.includes(String(first))) {
    throw new UsageError(`-f/--${FILE_FLAG} is a flag of ${FILE_COMMANDS.join(' and ')} only`)
  }
  const unknown = Object.keys(parsed).find(key => !['_', '$0', '--', 'help', FILE_FLAG, 'f'].includes(key) && !FLAGS.has(key))
  if (unknown !== undefined) {
    throw new UsageError(
      `unknown flag ${JSON.stringify(`${unknown.length === 1 ? '-' : '--'}${unknown}`)}; flags: ${[...FLAGS].map(f => `--${f}`).join(', ')}, --help`,
    )
  }
}

/** parseCommandLine reads argv into a command and the flags given; throws ConfigError on unknown input. */
export const parseCommandLine = async (argv: readonly string[], print: (text: string) => void): Promise<CommandLine> => {
  const [only, ...more] = argv
  if (more.length === 0 && (only === undefined || isCommand(only))) return { command: only ?? 'init', flags: {}, rest: [], files: [] }
  const { default: yargs } = await import('yargs')
  let helpShown = false
  // yargs takes a lone "-" for a positional argument; as kubectl's, "-f -" means stdin.
  const args = argv.flatMap((arg, i) =>
    arg === '-' && ['-f', `--${FILE_FLAG}`].includes(argv[i - 1] ?? '')
      ? []
      : ['-f', `--${FILE_FLAG}`].includes(arg) && argv[i + 1] === '-'
        ? [`--${FILE_FLAG}=-`]
        : [arg],
  )
  const parser = yargs(args)
    .scriptName('entrypoint')
    .usage('$0 [command] [flags]\n\nEvery flag can also be given as the environment variable shown; a flag wins.')
    .command(['init', '$0'], COMMANDS.init)
    .exitProcess(false)
    .parserConfiguration({ 'populate--': true, 'camel-case-expansion': false })
    .version(false)
    .wrap(Math.min(120, process.stdout.columns ?? 120))
    .fail((message, error) => {
      // yargs' own complaints (its YError) are about the command line, like ours.
      throw error !== undefined && error.name !== 'YError' ? error : new UsageError(`command line ${JSON.stringify(argv.join(' '))}: ${message}`)
    })
  for (const [name, description] of Object.entries(COMMANDS)) if (name !== 'init') parser.command(name, description)
  parser.option(FILE_FLAG, {
    alias: 'f',
    type: 'string',
    array: true,
    requiresArg: true,
    describe: 'inject, uninject: a file, a directory (its *.yaml, *.yml, *.json) or - for stdin; repeatable',
  })
  // One flag may serve two commands (--classifier-socket): register it once.
  for (const spec of new Map(SPECS.map(([, spec]) => [spec.flag, spec])).values()) {
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
  if (helpShown) return { command: 'help', flags: {}, rest: [], files: [] }
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
