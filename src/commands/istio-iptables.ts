// istio-iptables: Istio's init command, so this image can stand in for Istio's proxy_init image with Istio's exact
// container spec. It takes Istio's flags, environment and defaults, writes the rules Istio's semantics call for
// (plan/modes/istio.ts) through the same apply, exact read-back, whole-path check and live probe as init, and
// exits as Istio does: 0, 1 for a refused configuration or a failed apply (here also a failed read-back or probe),
// 126 when --run-validation finds capture missing, 255 for a command line pilot-agent would refuse. `plan`,
// `verify` and `clean` take the same command line after `istio-iptables` and exit with our own codes.

import { appendFileSync, statSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { ConfigError, NotCapturedError, UsageError, VerifyError, isSidecarError } from '../errors.js'
import { spawnInherited } from '../exec/processes.js'
import type { Io } from '../io.js'
import { createIstioLogger, type Logger } from '../log.js'
import { withLoAddress } from '../backend/lo-address.js'
import { familiesFor, planFor, type ModeRequest } from '../plan/modes/index.js'
import { PASSTHROUGH_SOURCE } from '../plan/modes/istio.js'
import { TPROXY_RULE_PRIORITY } from '../plan/owned.js'
import type { Plan } from '../plan/types.js'
import { parseArgv } from '../settings/istio/argv.js'
import {
  isGoTrue,
  needsResolvConf,
  readIstioLogging,
  readIstioValues,
  resolveIstioConfig,
  type Env,
  type IstioValues,
} from '../settings/istio/config.js'
import { ALL_ISTIO_FLAGS, ISTIO_ENV_ONLY } from '../settings/istio/options.js'
import type { IstioConfig } from '../settings/istio/types.js'
import { OPTIONS } from '../settings/options.js'
import type { BackendChoice } from '../settings/types.js'
import { messageOf } from '../text.js'
import { probeIstioPaths, provesCapture, type IstioCheck, type Who } from '../verify/istio-probe.js'
import { cleanWith } from './clean.js'
import { applyAndReport } from './init.js'
import { backendFor, decideBackend, prepareMode, type Prepared, type Target, type Timed } from './prepare.js'
import { verifyPrepared } from './verify.js'

/** What the command does with Istio's command line: Istio's own run, or one of our commands on its rules. */
export type IstioAction = 'run' | 'plan' | 'verify' | 'clean'

// The exit codes of Istio's run: pilot-agent exits -1 (255) when cobra refuses the command line or the logging
// options, istio-iptables 1 on any error, and 126 when validation fails (Istio's CNI repair controller keys on it).
const ISTIO_EXIT = { usage: 255, error: 1, notCaptured: 126 } as const

const EXEC_TIMEOUT_MS = Number(OPTIONS.execTimeout.default) * 1000

const usage = (): string => {
  const lines = Object.values(ALL_ISTIO_FLAGS).map(f => {
    const name = `${f.short ? `-${f.short}, ` : '    '}--${f.long}${f.kind === 'bool' ? '' : ` ${f.kind}`}`
    const env = f.env.length > 0 ? ` [env ${f.env.join(', ')}]` : ''
    return `  ${name.padEnd(48)} ${f.help}${env}${f.default !== '' && f.default !== 'false' ? ` (default ${JSON.stringify(f.default)})` : ''}`
  })
  const envOnly = Object.values(ISTIO_ENV_ONLY).map(v => `  ${v.env.padEnd(48)} ${v.help} (default ${JSON.stringify(v.default)})`)
  return [
    "Usage: entrypoint [plan|verify|clean] istio-iptables [flags]\n\nIstio's istio-iptables: capture the pod's traffic as Istio does, then read it back, check the whole path and probe it.\n\nFlags:",
    ...lines,
    '\nVariables without a flag:',
    ...envOnly,
    '',
  ].join('\n')
}

/** Where the logs go: stdout, stderr, or files (appended). */
const writerFor =
  (targets: readonly string[], io: Io) =>
  (line: string): void => {
    for (const target of targets) {
      if (target === 'stdout') io.out.write(line)
      else if (target === 'stderr') io.out.error(line)
      else {
        // A log file that cannot be written is not a reason to fail the pod: the line goes to stderr instead.
        try {
          appendFileSync(target, line)
        } catch {
          io.out.error(line)
        }
      }
    }
  }

/** The configuration as Istio would hold it, from the pod's files (a missing one is absent) and addresses. */
const configure = async (values: IstioValues, env: Env, io: Io): Promise<IstioConfig> =>
  resolveIstioConfig(values, env, {
    passwd: await io.fs.readFile('/etc/passwd'),
    group: await io.fs.readFile('/etc/group'),
    resolvConf: needsResolvConf(values) ? await io.fs.readFile('/etc/resolv.conf') : undefined,
    addresses: Object.values(networkInterfaces())
      .flat()
      .flatMap(i => (i ? [i.address] : [])),
  })

const describeValues = (values: IstioValues): string[] =>
  Object.entries(ALL_ISTIO_FLAGS).map(([key, f]) => `--${f.long}=${JSON.stringify(values.text[key] ?? '')} (${values.from[key]})`)

const backendOf = (config: IstioConfig): BackendChoice =>
  config.nativeNftables ? 'nftables' : config.iptablesVariant === undefined ? 'auto' : `iptables-${config.iptablesVariant}`

const requestOf = (config: IstioConfig): ModeRequest => ({
  mode: 'istio',
  input: { config, flavour: config.nativeNftables ? 'nftables' : 'iptables' },
})

const targetOf = (config: IstioConfig, hostFamilies = false): Target => ({
  backend: backendOf(config),
  ipv6: 'auto',
  routing: { priority: TPROXY_RULE_PRIORITY, mark: config.tproxyMark, table: config.tproxyRouteTable },
  hostFamilies,
})

/** The backend for Istio's rules, with ::6 on lo when IPv6 is captured. */
const prepareIstio = async (config: IstioConfig, io: Io, timed?: Timed): Promise<Prepared> => {
  const prepared = await prepareMode(requestOf(config), targetOf(config), io, timed)
  return config.enableIpv6 ? { ...prepared, backend: withLoAddress(prepared.backend, io.exec, PASSTHROUGH_SOURCE.ipv6) } : prepared
}

// How long a connection to an address outside the pod is watched for one of our listeners taking it: a captured one
// lands in well under a millisecond; an uncaptured one is not waited for any longer than this.
const AWAY_MS = 100

const whoAmI = (): Who => ({ uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 })

const lines = (checks: readonly IstioCheck[]): string[] => checks.map(c => `${c.family} ${c.name}: ${c.status}, ${c.detail}`)

/** The live probe of Istio's paths as init runs it: root stands for the app; the proxy's paths need CAP_SETUID. */
const liveProbe =
  (config: IstioConfig) =>
  async (plan: Plan): Promise<string[]> => {
    const self = whoAmI()
    const checks = await probeIstioPaths({
      plan,
      app: self,
      proxy: { uid: config.proxyUids[0] ?? 1337, gid: config.proxyGids[0] ?? 1337 },
      self,
      inboundTunnelPort: config.inboundTunnelPort,
      probePort: config.probePort,
      awayMs: AWAY_MS,
    })
    if (checks.some(c => c.status === 'failed'))
      throw new VerifyError("the live probe saw traffic go where Istio's rules say it should not", lines(checks))
    return lines(checks)
  }

/**
 * Validation as Istio's validation container runs it: as this process, with no privilege, the paths of the identity
 * it is (the proxy's when it runs as a proxy UID or GID, as Istio's does). Passes only when every path landed
 * where the plan says and at least one was captured.
 */
const validate = async (config: IstioConfig, logger: Logger): Promise<void> => {
  const self = whoAmI()
  const request = requestOf(config)
  const plan = planFor(request, familiesFor(request)?.value ?? ['ipv4'])
  const isProxy = config.proxyUids.includes(self.uid) || config.proxyGids.includes(self.gid)
  const checks = await probeIstioPaths({
    plan,
    app: isProxy ? undefined : self,
    proxy: isProxy ? self : undefined,
    self,
    inboundTunnelPort: config.inboundTunnelPort,
    probePort: config.probePort,
    awayMs: Math.min(AWAY_MS, config.probeTimeoutMs),
  })
  if (checks.some(c => c.status === 'failed') || !checks.some(provesCapture)) {
    throw new NotCapturedError(
      "validation failed: the pod's traffic is not captured as Istio's rules say (the workload is not ready for Istio; with Istio CNI, the node's CNI plugin may not have run yet)",
      lines(checks),
    )
  }
  logger.report('validate', 'sidecar-redirect istio-iptables: validation passed, capture is in place', { live: lines(checks) })
}

/** When the command runs from another network namespace than --network-namespace: the same command, run inside it. */
const elsewhere = (netns: string, from: string): boolean => {
  const here = statSync('/proc/self/ns/net')
  let there: ReturnType<typeof statSync>
  try {
    there = statSync(netns)
  } catch (error) {
    throw new ConfigError(from, netns, `the path of an existing network namespace (${(error as NodeJS.ErrnoException).code ?? messageOf(error)})`)
  }
  return here.ino !== there.ino || here.dev !== there.dev
}

const reRunIn = async (netns: string, argv: readonly string[], action: IstioAction): Promise<number> => {
  const command = action === 'run' ? ['istio-iptables'] : [action, 'istio-iptables']
  const child = spawnInherited('nsenter', [`--net=${netns}`, process.execPath, process.argv[1] ?? '', ...command, ...argv])
  const ended = await child.ended
  return ended.exitCode ?? 1
}

const act = async (action: IstioAction, config: IstioConfig, values: IstioValues, io: Io, logger: Logger): Promise<void> => {
  // What init would send, by the backend init would choose here (decideBackend, as our own plan asks).
  const plan = async (): Promise<void> => {
    const request = requestOf(config)
    const target = targetOf(config)
    const families = familiesFor(request) ?? { value: ['ipv4' as const], reason: 'IPv4 only' }
    const variant = await decideBackend(target, families, io)
    const payloads = backendFor(variant.value, io, target).render(planFor(request, families.value))
    const ipv6 = config.enableIpv6 ? `# ip -6 addr add ${PASSTHROUGH_SOURCE.ipv6.address}/128 dev lo\n` : ''
    io.out.write(payloads + ipv6)
  }
  switch (action) {
    case 'plan':
      return plan()
    case 'clean':
      return cleanWith(() => prepareMode(requestOf(config), targetOf(config, true), io), io, logger)
    case 'verify':
      return verifyPrepared(await prepareIstio(config, io), liveProbe(config), logger)
    case 'run':
      if (config.cleanupOnly) return cleanWith(() => prepareMode(requestOf(config), targetOf(config, true), io), io, logger)
      if (config.dryRun) {
        logger.event('dry-run', 'dry run: the rules below are what would be written; nothing is changed')
        await plan()
      } else if (!config.skipRuleApply) {
        await applyAndReport(
          {
            name: 'istio-iptables',
            settings: describeValues(values),
            prepare: (io, timed) => prepareIstio(config, io, timed),
            warm: true,
            live: liveProbe(config),
          },
          io,
          logger,
        )
      }
      if (config.runValidation) await validate(config, logger)
  }
}

/** runIstioIptables runs Istio's command line (`argv` follows `istio-iptables`); returns the exit code. */
export const runIstioIptables = async (argv: readonly string[], env: Env, ioIn: Io, action: IstioAction = 'run'): Promise<number> => {
  let io = ioIn
  const ours = action !== 'run'
  let logger = createIstioLogger({ json: false, level: 'info', write: io.out.error })
  const exitFor = (error: unknown): number => {
    if (!isSidecarError(error)) {
      io.out.error(`sidecar-redirect: unexpected failure (a bug; please report it):\n${error instanceof Error ? error.stack : String(error)}\n`)
      return 1
    }
    if (error instanceof UsageError) io.out.error(`Error: ${error.message}\n`)
    const cause = error.cause instanceof Error ? [`cause: ${messageOf(error.cause).split('\n')[0]}`] : []
    logger.error(error.code, error.message, [...error.details, ...cause])
    if (ours) return error.exitCode
    if (error instanceof UsageError) return ISTIO_EXIT.usage
    return error instanceof NotCapturedError ? ISTIO_EXIT.notCaptured : ISTIO_EXIT.error
  }
  try {
    const parsed = parseArgv(argv, ALL_ISTIO_FLAGS)
    if (parsed.help) {
      io.out.write(usage())
      return 0
    }
    const values = readIstioValues(parsed, env)
    const logging = readIstioLogging(values)
    logger = createIstioLogger({ json: logging.json, level: logging.level, write: writerFor(logging.targets, io) })
    const netns = values.text['networkNamespace']?.trim()
    if (netns && elsewhere(netns, values.from['networkNamespace'] ?? '--network-namespace')) return await reRunIn(netns, argv, action)
    // As ours: a rule tool that hangs is killed after ISTIO_EXEC_TIMEOUT's default, and the run fails naming it.
    io = { ...ioIn, exec: (file, args, input, options) => ioIn.exec(file, args, input, { timeoutMs: EXEC_TIMEOUT_MS, ...options }) }
    const config = await configure(values, env, io)
    if (isGoTrue(values.text['redirectDns']) && config.dns === 'off')
      logger.event(
        'warning',
        'DNS redirection is on, but DNS capture of every address is off and /etc/resolv.conf lists no nameserver: DNS is not redirected',
      )
    await act(action, config, values, io, logger)
    return 0
  } catch (error) {
    return exitFor(error)
  }
}
