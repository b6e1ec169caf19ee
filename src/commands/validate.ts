// validate: the pod's own proof that capture is in place, with no privilege at all (the first init container in
// CNI mode, where no container of the pod has a capability). It reads no rules (that needs NET_ADMIN): it makes
// the app's connection, as whatever UID it runs as, to one of the pod's addresses and checks that it lands on the
// port the plan redirects to, with the right SO_ORIGINAL_DST, in every family.

import { readIpv6, chooseFamilies } from '../backend/detect.js'
import { ConfigError, NotCapturedError } from '../errors.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import { buildPlan } from '../plan/build.js'
import type { Settings } from '../settings/types.js'
import { appCapabilities, readStatus } from '../privilege/status.js'

export const runValidate = async (settings: Settings, io: Io, logger: Logger): Promise<void> => {
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
  const plan = buildPlan(settings, families.value)
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
