// One CNI request, per the spec (1.0.0 and 1.1.0). The work in the pod's netns is done by our own CLI run there
// (init, verify, clean), so CNI mode applies and verifies exactly as an init container does; this module only
// decides what to run and turns the outcome into the spec's result or error object. What a reply says reaches the
// pod's events, which a tenant reads: it carries our own words, the request's values and the pod's own rules, never
// what a file on the node holds or is; that goes to the agent's log (CniError.log).

import { ConfigError, FileConfigError } from '../errors.js'
import type { NetnsLookup } from '../net/namespace.js'
import { loadSettings, type ReadServices } from '../settings/load.js'
import { OPTIONS } from '../settings/options.js'
import { parseSettings } from '../settings/parse.js'
import { configVersion, decidePod, parseNetConf, SUPPORTED_VERSIONS, type NetConf, type PodDecision } from './config.js'
import { CNI_CODES, CniError, errorReply, PLUGIN_CODE_BASE, success, type Reply } from './result.js'
import type { Request } from './wire.js'

export type CliCommand = 'init' | 'verify' | 'clean'

export interface CliOutcome {
  readonly exitCode: number
  readonly output: string
}

/**
 * What a CNI_NETNS path names, seen from the agent: as openNetns says (gone, not a netns, not openable), except
 * that a netns is named by its identity (`id` tells it from a later one at the same path) and the agent's own or
 * PID 1's (the node's, in the chart's DaemonSet) is never a pod's.
 */
export type NetnsState =
  | Exclude<NetnsLookup, { readonly kind: 'netns' }>
  | { readonly kind: 'netns'; readonly id: string }
  | { readonly kind: 'own'; readonly whose: string }

/** A pod ADD captured, as the agent keeps it captured (see keeper.ts). */
export interface CapturedPod {
  readonly container: string
  readonly netns: string
  /** The ISTIO_* environment its rules were made from. */
  readonly env: Readonly<Record<string, string>>
}

export interface AgentIo {
  /** Runs init, verify or clean for the netns at `netns` with exactly `env`, as the CLI would there. */
  runCli(netns: string, command: CliCommand, env: Readonly<Record<string, string>>): Promise<CliOutcome>
  /** What the path names; changes nothing. */
  inspectNetns(netns: string): Promise<NetnsState>
  /** Lines of ours (chains, rules, our nft table) found in the netns, by any backend. */
  ownedRules(netns: string): Promise<readonly string[]>
  /** The tools ADD needs that this node-side process cannot run. */
  missingTools(): Promise<readonly string[]>
  readonly readServices: ReadServices
  /** ADD captured the pod: keep it so. Never throws. */
  keep(pod: CapturedPod): Promise<void>
  /** DEL: stop keeping the pod of this container (and netns, when the runtime still names one). Never throws. */
  forget(container: string, netns: string): Promise<void>
}

// Whole-path verification by read-back is what ADD waits for: it needs no process in the pod.
const ADD_DEFAULTS = { ISTIO_VERIFY: 'rules' }

// clean removes whatever of ours it finds, whatever the services or nameservers: reading them could only fail it.
const CLEAN_IGNORES: ReadonlySet<string> = new Set(
  [OPTIONS.servicesFile, OPTIONS.services, OPTIONS.resolvConf, OPTIONS.dnsServers, OPTIONS.dnsCapture, OPTIONS.outboundMethod].map(o => o.env),
)

const requireVariables = (env: Request['env'], names: readonly string[]): void => {
  const missing = names.filter(name => !env[name])
  if (missing.length > 0) throw new CniError(CNI_CODES.invalidEnvironment, `${missing.join(', ')} must be set for ${env['CNI_COMMAND']}`)
}

// A setting refused by src/settings names the env variable; the message names where it was written instead. A
// refusal for what a file is or holds names only the setting: the file is the node's, the reply the tenant's.
const validate = async (decision: PodDecision & { captured: true }, io: AgentIo): Promise<Record<string, string>> => {
  const env = { ...ADD_DEFAULTS, ...decision.env }
  try {
    await loadSettings(env, {}, io.readServices)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    const source = decision.sources.get(error.variable) ?? error.variable
    if (error instanceof FileConfigError)
      throw new CniError(
        CNI_CODES.invalidConfig,
        `${source}: the file it names was refused (the node agent's log says why)`,
        '',
        `${source}: ${error.message}`,
      )
    throw new CniError(CNI_CODES.invalidConfig, `${source}: ${error.message}`)
  }
  return env
}

// What init, verify and clean print when they fail is the pod's own rules for E_APPLY (4) and E_VERIFY (5), and
// may be anything else for the others (a file the settings name, for E_CONFIG): those are named by code only.
const TOLD: ReadonlySet<number> = new Set([4, 5])

const failed = (command: CliCommand, outcome: CliOutcome, what: string): CniError => {
  const code = /\bE_[A-Z]+\b/.exec(outcome.output)?.[0] ?? 'an unexpected failure'
  const lines = outcome.output.trim().split('\n')
  const first = lines.find(line => line.includes(code)) ?? lines[0] ?? ''
  const head = `${what}: ${command} in the pod's netns exited ${outcome.exitCode} (${code})`
  return TOLD.has(outcome.exitCode)
    ? new CniError(PLUGIN_CODE_BASE + outcome.exitCode, `${head}: ${first}`, outcome.output)
    : new CniError(PLUGIN_CODE_BASE + outcome.exitCode, `${head}; the node agent's log has its output`, '', outcome.output)
}

/** Why the agent will not work in what CNI_NETNS names, or undefined when it is a pod's netns. Pure. */
const refusal = (shown: string, state: NetnsState): string | undefined => {
  switch (state.kind) {
    case 'netns':
      return undefined
    case 'gone':
      return `${shown} names nothing: no such network namespace`
    case 'not-netns':
      return `${shown} is ${state.what}, not a network namespace`
    case 'closed':
      return `${shown} cannot be opened by the node agent (${state.why})`
    case 'own':
      return `${shown} is ${state.whose} network namespace, not a pod's: refusing to change it`
  }
}

/** The netns a captured pod's ADD or CHECK names must be one the agent may work in; throws CniError 4 if not. */
const requireTarget = async (netns: string, io: AgentIo): Promise<void> => {
  const refused = refusal(`CNI_NETNS=${JSON.stringify(netns)}`, await io.inspectNetns(netns))
  if (refused !== undefined) throw new CniError(CNI_CODES.invalidEnvironment, refused)
}

const passThrough = (conf: NetConf): string => `${JSON.stringify(conf.prevResult ?? { cniVersion: conf.cniVersion })}\n`

const add = async (request: Request, conf: NetConf, io: AgentIo): Promise<Reply> => {
  requireVariables(request.env, ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'])
  const netns = request.env['CNI_NETNS'] ?? ''
  const decision = decidePod(conf, request.env['CNI_ARGS'] ?? '')
  if (!decision.captured) return success(passThrough(conf), `sidecar-redirect: ADD ${netns}: not captured (${decision.reason}); nothing changed\n`)
  const env = await validate(decision, io)
  await requireTarget(netns, io)
  const outcome = await io.runCli(netns, 'init', env)
  if (outcome.exitCode !== 0) {
    // The sandbox will not start: take ours out again (init's apply is atomic, but a failed verify leaves the rules
    // in place), so a failed ADD leaves the netns as it found it.
    const cleaned = await io.runCli(netns, 'clean', env)
    const after =
      cleaned.exitCode === 0 ? 'nothing of ours was left in the netns' : `and removing our rules failed too (clean exited ${cleaned.exitCode})`
    throw failed('init', outcome, `capture could not be set up, so the sandbox must not start (${after})`)
  }
  await io.keep({ container: request.env['CNI_CONTAINERID'] ?? '', netns, env })
  return success(passThrough(conf), `sidecar-redirect: ADD ${netns}: captured (${decision.reason}); rules applied and verified\n`)
}

const check = async (request: Request, conf: NetConf, io: AgentIo): Promise<Reply> => {
  requireVariables(request.env, ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'])
  const netns = request.env['CNI_NETNS'] ?? ''
  const decision = decidePod(conf, request.env['CNI_ARGS'] ?? '')
  await requireTarget(netns, io)
  if (decision.captured) {
    const outcome = await io.runCli(netns, 'verify', await validate(decision, io))
    if (outcome.exitCode !== 0) throw failed('verify', outcome, 'the pod is captured, but its rules are not the ones planned')
    return success('', `sidecar-redirect: CHECK ${netns}: the rules match the plan exactly\n`)
  }
  const ours = await io.ownedRules(netns)
  if (ours.length > 0) {
    throw new CniError(
      PLUGIN_CODE_BASE + 5,
      `the pod is not captured (${decision.reason}), but rules of ours are in its netns: ${ours[0]}`,
      ours.join('\n'),
    )
  }
  return success('', `sidecar-redirect: CHECK ${netns}: not captured and no rules of ours\n`)
}

/**
 * The environment DEL cleans with: the pod's as ADD decided it; if that is refused now (an annotation or a size that
 * ADD refused too, so nothing of it was applied), the operator's settings alone; if those are refused, the defaults.
 * Only the settings that decide where clean looks (the backend, TPROXY's routing) matter to it, and no file is named:
 * clean plans no service and no nameserver. Pure.
 */
export const chooseCleanEnv = (stdin: string, cniArgs: string): Readonly<Record<string, string>> => {
  const candidates: (() => Readonly<Record<string, string>>)[] = []
  try {
    const conf = parseNetConf(stdin)
    const decided = (annotations: NetConf['annotations']) => () => {
      const decision = decidePod({ ...conf, annotations }, cniArgs)
      return decision.captured ? decision.env : conf.settings
    }
    candidates.push(decided(conf.annotations), decided({}), () => conf.settings)
  } catch {
    // a config DEL cannot read: the defaults
  }
  for (const candidate of candidates) {
    try {
      const env = Object.fromEntries(Object.entries(candidate()).filter(([name]) => !CLEAN_IGNORES.has(name)))
      parseSettings(env)
      return env
    } catch {
      // the next, narrower choice
    }
  }
  return {}
}

// DEL must succeed whatever is left: a netns already gone, a path that is no netns (nothing of ours can be there),
// or settings that ADD refused (then nothing was applied). A DEL that failed for these would fail forever, and the
// runtime would never run the other plugins' DEL (an IPAM address would leak).
const del = async (request: Request, io: AgentIo): Promise<Reply> => {
  const netns = request.env['CNI_NETNS'] ?? ''
  await io.forget(request.env['CNI_CONTAINERID'] ?? '', netns)
  const state: NetnsState = netns === '' ? { kind: 'gone' } : await io.inspectNetns(netns)
  // Nothing of ours can be in what the agent may not work in: it never put anything there.
  const refused = refusal(netns || 'CNI_NETNS (empty)', state)
  if (refused !== undefined) return success('', `sidecar-redirect: DEL: ${refused}; nothing to remove\n`)
  const env = chooseCleanEnv(request.stdin, request.env['CNI_ARGS'] ?? '')
  const outcome = await io.runCli(netns, 'clean', env)
  if (outcome.exitCode !== 0) throw failed('clean', outcome, 'our rules could not be removed')
  return success('', `sidecar-redirect: DEL ${netns}: no rules of ours left\n`)
}

const status = async (io: AgentIo): Promise<Reply> => {
  const missing = await io.missingTools()
  if (missing.length > 0) throw new CniError(CNI_CODES.notAvailable, `the node agent cannot run ${missing.join(', ')}, so ADD would fail`)
  return success('', '')
}

/** handleRequest answers one forwarded CNI request; never throws for a request it can read. */
export const handleRequest = async (request: Request, io: AgentIo): Promise<Reply> => {
  const command = request.env['CNI_COMMAND'] ?? ''
  const version = configVersion(request.stdin)
  try {
    switch (command) {
      case 'VERSION':
        return success(`${JSON.stringify({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS })}\n`, '')
      case 'ADD':
        return await add(request, parseNetConf(request.stdin), io)
      case 'CHECK':
        return await check(request, parseNetConf(request.stdin), io)
      case 'DEL':
        return await del(request, io)
      case 'STATUS':
        parseNetConf(request.stdin)
        return await status(io)
      case 'GC':
        parseNetConf(request.stdin)
        return success(
          '',
          "sidecar-redirect: GC: nothing is kept outside the pods' netns but the agent's records of the pods it keeps captured, and each goes at DEL or when its netns does: nothing to collect\n",
        )
      default:
        throw new CniError(
          CNI_CODES.invalidEnvironment,
          `CNI_COMMAND=${JSON.stringify(command)} is not valid: expected ADD, CHECK, DEL, VERSION, STATUS or GC`,
        )
    }
  } catch (error) {
    if (!(error instanceof CniError)) throw error
    return errorReply(version, error, `sidecar-redirect: ${command}: ${error.message}\n`)
  }
}
