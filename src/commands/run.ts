// run: the proxy agent. As root it does the few things that need root (raise the file limit, join the net_cls
// group), then execs itself through setpriv as the proxy's user, so no root process stays behind. Unprivileged,
// it checks that the proxy's identity is the one the rules exempt, then supervises the proxy.

import { createRequire } from 'node:module'
import { chooseFamilies, readIpv6 } from '../backend/detect.js'
import { spawnInherited } from '../exec/processes.js'
import { enterNetClsGroup, isInGroupFor, mountNetCls, netClsPath } from '../cgroup/net-cls.js'
import { requestClassification } from '../classifier/client.js'
import { ConfigError, PrivilegeError } from '../errors.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import { supervise } from '../agent/supervise.js'
import { buildPlan } from '../plan/build.js'
import { describeIdentity, resolveIdentity, type PasswdEntry, type UserLookup } from '../privilege/identity.js'
import { replaceProcess } from '../privilege/replace-process.js'
import { raiseNofile } from '../privilege/rlimit.js'
import { setprivArgs } from '../privilege/setpriv.js'
import { CAP_NET_ADMIN, describeStatus, hasCapability, readStatus, type ProcessStatus } from '../privilege/status.js'
import type { AgentSettings, OutboundMethod, Settings } from '../settings/types.js'
import { hex } from '../text.js'

const lookupUser: UserLookup = user => {
  const posix = createRequire(import.meta.url)('posix') as { getpwnam(u: string | number): PasswdEntry }
  try {
    return posix.getpwnam(user)
  } catch {
    return undefined
  }
}

/**
 * What the proxy needs CAP_NET_ADMIN for, if anything: SO_MARK on its upstream sockets (method mark), and
 * IP_TRANSPARENT (TPROXY: a listener that accepts diverted connections, and connecting on from the client's address).
 */
const netAdminNeeds = (settings: Settings): string[] => [
  ...(settings.outboundMethod === 'mark' ? ['SO_MARK'] : []),
  ...(settings.inboundInterceptionMode === 'TPROXY' ? ['IP_TRANSPARENT'] : []),
]

const dropAndReexec = async (settings: Settings, agent: AgentSettings, io: Io, logger: Logger): Promise<never> => {
  const identity = resolveIdentity(settings, agent, lookupUser)
  const done: string[] = []
  if (agent.nofile !== undefined) done.push(raiseNofile(agent.nofile))
  if (settings.outboundMethod === 'cgroup') {
    const group = await enterNetClsGroup(await mountNetCls(agent.netClsRoot, io.exec), settings.netClsId, process.pid)
    done.push(`joined net_cls group ${group}`)
  }
  const needs = netAdminNeeds(settings)
  logger.event(
    'drop',
    `becoming ${describeIdentity(identity)} with ${needs.length > 0 ? `only CAP_NET_ADMIN (for ${needs.join(' and ')})` : 'no capabilities'} and no_new_privs${done.length ? `; ${done.join('; ')}` : ''}`,
  )
  const self = [process.execPath, ...process.execArgv, ...process.argv.slice(1)]
  return replaceProcess('setpriv', [...setprivArgs(identity, needs.length > 0), ...self], process.env)
}

const byUid = async (settings: Settings, status: ProcessStatus): Promise<void> => {
  const [uid] = status.uids
  if (uid !== settings.proxyUid && !status.gids.includes(settings.proxyGid ?? -1)) {
    throw new PrivilegeError(
      `running as UID ${uid}, but the rules exempt UID ${settings.proxyUid} (ISTIO_PROXY_UID): the proxy's own traffic would be captured and loop`,
    )
  }
}

// What each method needs of the proxy's identity, so that its own traffic is exempt. A Record, so a new method
// cannot be left unchecked.
const IDENTITY_CHECKS: Record<OutboundMethod, (settings: Settings, status: ProcessStatus, agent: AgentSettings) => Promise<void>> = {
  uid: byUid,
  explicit: byUid,
  mark: async (_settings, status) => {
    if (!hasCapability(status.capAmb, CAP_NET_ADMIN)) {
      throw new PrivilegeError(
        'method mark: the proxy needs CAP_NET_ADMIN to set SO_MARK; start the agent as root with NET_ADMIN and it hands the proxy exactly that',
      )
    }
  },
  cgroup: async (settings, _status, agent) => {
    if (!(await isInGroupFor('self', settings.netClsId, agent.netClsRoot))) {
      throw new PrivilegeError(
        `method cgroup: this process is in no net_cls group with classid ${hex(settings.netClsId)} (it is in ${(await netClsPath('self')) ?? 'none'}), and without root it cannot join one: run the agent as root, or set ISTIO_CLASSIFIER_SOCKET`,
      )
    }
  },
}

/** checkIdentity refuses to start a proxy whose traffic the rules would capture, which would loop. */
const checkIdentity = async (settings: Settings, agent: AgentSettings, logger: Logger): Promise<void> => {
  const status = readStatus('self')
  // Read back from the kernel, not from what was asked for: this is what the proxy inherits.
  logger.event('identity', `running as ${describeStatus(status)}`, {
    uids: status.uids,
    gids: status.gids,
    groups: status.groups,
    caps: {
      effective: hex(status.capEff),
      permitted: hex(status.capPrm),
      inheritable: hex(status.capInh),
      ambient: hex(status.capAmb),
      bounding: hex(status.capBnd),
    },
    noNewPrivs: status.noNewPrivs,
  })
  if (status.uids[0] === 0) throw new PrivilegeError('refusing to run the proxy as root')
  await IDENTITY_CHECKS[settings.outboundMethod](settings, status, agent)
  if (settings.inboundInterceptionMode === 'TPROXY' && !hasCapability(status.capAmb, CAP_NET_ADMIN)) {
    throw new PrivilegeError(
      'TPROXY: the proxy needs CAP_NET_ADMIN for IP_TRANSPARENT; start the agent as root with NET_ADMIN and it hands the proxy exactly that',
    )
  }
}

/**
 * checkBypass: nothing else checks the bypass with the proxy's real identity (init and the node agent connect as
 * the UID they were told; in a user-namespaced pod programmed from outside the kernel reads UIDs otherwise). One
 * connection as this process, now the proxy's identity, must not be redirected, or the proxy would loop.
 */
const checkBypass = async (settings: Settings, status: ProcessStatus, io: Io, logger: Logger): Promise<void> => {
  const families = chooseFamilies(settings.ipv6, await readIpv6(io.fs))
  const { probeProxyBypass } = await import('../verify/probe.js')
  const checks = await probeProxyBypass(buildPlan(settings, families.value), { uid: status.uids[0] ?? -1, gid: status.gids[0] ?? -1 })
  const lines = checks.map(c => `${c.family} ${c.name}: ${c.status}, ${c.detail}`)
  if (checks.some(c => c.status === 'failed')) {
    throw new PrivilegeError(
      "the rules redirect this agent's own connection, made as the proxy will make them: the proxy would capture its own traffic and loop, so it is not started",
      undefined,
      lines,
    )
  }
  logger.event('bypass', `the proxy's own connections go out directly: ${lines.join('; ')}`, { checks: lines })
}

export const runAgent = async (settings: Settings, agent: AgentSettings, proxy: readonly string[], io: Io, logger: Logger): Promise<number> => {
  const [command, ...args] = proxy
  if (command === undefined) throw new ConfigError('run', '', 'a proxy command after --, e.g. run -- envoy -c /etc/envoy/envoy.yaml')
  if (process.getuid?.() === 0) return dropAndReexec(settings, agent, io, logger)
  if (settings.outboundMethod === 'cgroup' && agent.classifierSocket !== undefined) {
    const group = await requestClassification(agent.classifierSocket, settings.netClsId, agent.netClsRoot)
    logger.event('classified', `the node classifier put this agent into net_cls group ${group}`)
  }
  await checkIdentity(settings, agent, logger)
  await checkBypass(settings, readStatus('self'), io, logger)
  // Started unprivileged by the container runtime, no_new_privs may not be set yet: setpriv sets it for the proxy.
  const [file, argv] = readStatus('self').noNewPrivs ? [command, args] : ['setpriv', ['--no-new-privs', '--', command, ...args]]
  return supervise({
    command: file,
    args: argv,
    restart: agent.restart,
    drainMs: agent.drainSeconds * 1000,
    spawn: spawnInherited,
    logger,
    now: io.now,
  })
}
