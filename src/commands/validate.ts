// validate: the pod's own proof that capture is in place, with no privilege at all (the first init container in
// CNI mode, where no container of the pod has a capability). It reads no rules (that needs NET_ADMIN). It decides the
// pod's effective settings exactly as the node agent did (decidePod: the operator's settings from its env, plus the
// pod's annotations from a downward API file where the operator's allow-list lets them count), then makes the app's
// connections, as whatever UID it runs as: to one of the pod's addresses, and to destinations routed out of each of
// its interfaces, in every family; each must land on the port the plan redirects to, with the right SO_ORIGINAL_DST.

import { readPlanFacts } from '../backend/interface-routes.js'
import { routedInterfaces } from '../plan/features/exclude-interfaces.js'
import { readFile } from 'node:fs/promises'
import { readIpv6, chooseFamilies } from '../backend/detect.js'
import { decidePod, type NetConf } from '../cni/config.js'
import { parseAnnotationsFile } from '../cni/downward-api.js'
import { CniError } from '../cni/result.js'
import { ConfigError, NotCapturedError } from '../errors.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import { buildPlan } from '../plan/build.js'
import { appCapabilities, readStatus } from '../privilege/status.js'
import { loadSettings } from '../settings/load.js'
import { OPTIONS } from '../settings/options.js'
import type { Env, Flags } from '../settings/parse.js'
import { readNameservers } from '../settings/resolv-conf.js'
import { readServicesFile } from '../settings/services-file.js'
import type { Settings, ValidateSettings } from '../settings/types.js'

/** The operator's settings as validate was given them: its ISTIO_* variables, a flag winning over its variable. Pure. */
export const operatorSettings = (env: Env, flags: Flags): Record<string, string> => {
  const chosen: Record<string, string> = {}
  for (const [key, spec] of Object.entries(OPTIONS)) {
    const value = flags[key] ?? env[spec.env]
    if (value !== undefined) chosen[spec.env] = value
  }
  return chosen
}

const readAnnotations = async (options: ValidateSettings): Promise<Record<string, string>> => {
  const path = options.annotationsFile
  if (path === undefined) return {}
  const variable = 'ISTIO_POD_ANNOTATIONS_FILE'
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(variable, path, `a readable downward API annotations file (${error.code ?? error.message})`)
  })
  return parseAnnotationsFile(text, variable, path)
}

/** The settings the node agent applied to this pod, decided as it decided them; throws NotCapturedError if none. */
const effectiveSettings = async (base: Settings, env: Env, flags: Flags, options: ValidateSettings): Promise<Settings> => {
  const conf: NetConf = {
    cniVersion: '1.1.0',
    settings: operatorSettings(env, flags),
    // A pod that runs validate must be captured, whatever the operator's default.
    captureAll: true,
    excludeNamespaces: [],
    allowedAnnotations: options.allowedAnnotations,
    annotations: await readAnnotations(options),
    // The runtime wrote the pod's resolv.conf from the DNS config it also handed the node agent.
    nameservers: base.dnsCapture === 'resolv-conf' ? base.nameservers.map(c => c.address) : undefined,
  }
  let decision: ReturnType<typeof decidePod>
  try {
    decision = decidePod(conf, '')
  } catch (error) {
    if (!(error instanceof CniError)) throw error
    throw new NotCapturedError(`the pod's annotations ask for what the operator does not allow: ${error.message}`, [])
  }
  if (!decision.captured) throw new NotCapturedError(`the pod is not captured: ${decision.reason}`, [])
  return loadSettings(decision.env, {}, readServicesFile, readNameservers)
}

export const runValidate = async (base: Settings, env: Env, flags: Flags, options: ValidateSettings, io: Io, logger: Logger): Promise<void> => {
  const settings = await effectiveSettings(base, env, flags, options)
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  // The proxy's own identity is exempt by design: its connection proves nothing about the app's.
  if (uid === settings.proxyUid || gid === settings.proxyGid) {
    throw new ConfigError(
      'validate',
      `uid ${uid} gid ${gid}`,
      `an identity the rules capture: run validate as an app UID, not ISTIO_PROXY_UID or ISTIO_PROXY_GID`,
    )
  }
  const families = chooseFamilies(settings.ipv6, await readIpv6(io.fs))
  // The plan as init made it: with the excluded interfaces' routes when their scope is routes, read the same way.
  const plan = buildPlan(settings, families.value, await readPlanFacts(routedInterfaces(settings), families.value, io.exec))
  const { probeAppCapture } = await import('../verify/probe.js')
  const checks = await probeAppCapture(plan, { uid, gid })
  const lines = checks.map(c => `${c.family} ${c.name}: ${c.status}, ${c.detail}`)
  // Run as the app's identity, validate also tells what that identity could do past capture.
  const capabilities = appCapabilities(readStatus('self'))
  if (!checks.some(c => c.status === 'passed') || checks.some(c => c.status === 'failed')) {
    throw new NotCapturedError("the pod's traffic is not captured: an app connection did not reach the proxy port", [
      ...lines,
      ...capabilities.map(c => `capabilities: ${c}`),
    ])
  }
  logger.report('validate', 'sidecar-redirect validate: ok', {
    families: `${families.value.join(', ')}: ${families.reason}`,
    live: lines,
    capabilities,
  })
}
