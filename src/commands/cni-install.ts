// cni-install: the CNI plugin's installer, one per node (the chart's DaemonSet runs it in the foreground beside the
// node agent). It copies the plugin into the host's CNI bin directory and chains our entry last in the primary
// config file, then keeps it so: the directory is watched (fs.watch, plus a check every ISTIO_CNI_CHECK_SECONDS in
// case a notification is missed) and the entry is put back when the primary CNI rewrites its file. On SIGTERM or
// SIGINT it takes both out again. The entry is validated first, as the plugin would validate it on every ADD, so a
// bad setting is refused here (exit 2) rather than failing every pod's sandbox.

import { watch } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { ANNOTATIONS_CAPABILITY, DNS_CAPABILITY, parseNetConf, SUPPORTED_VERSIONS } from '../cni/config.js'
import { PLUGIN_TYPE } from '../cni/conflist.js'
import { type InstallTarget, reconcile, removeLeftovers, uninstall } from '../cni/install.js'
import { ConfigError, EnvironmentError, isSidecarError } from '../errors.js'
import { classifyEscaped } from '../exec/refusal.js'
import type { Logger } from '../log.js'
import { parseSettings } from '../settings/parse.js'
import type { CniInstallSettings } from '../settings/types.js'
import { messageOf } from '../text.js'

/** The entry chained into the conflist, from the installer's settings. Pure. */
export const buildEntry = (options: CniInstallSettings): Record<string, unknown> => ({
  type: PLUGIN_TYPE,
  agentSocket: options.agentSocket,
  settings: options.podSettings,
  captureAll: options.captureAll,
  allowedAnnotations: options.allowedAnnotations,
  excludeNamespaces: options.excludeNamespaces,
  // The pod's annotations (containerd and CRI-O pass them), and its DNS config for ISTIO_DNS_CAPTURE=resolv-conf.
  capabilities: { [ANNOTATIONS_CAPABILITY]: true, [DNS_CAPABILITY]: true },
})

// The plugin's own checks (parseNetConf), then the settings as the env would be: what every ADD would refuse.
const refuseEntry = (entry: Record<string, unknown>): void => {
  try {
    parseNetConf(JSON.stringify({ cniVersion: SUPPORTED_VERSIONS[0], ...entry }))
    parseSettings(entry['settings'] as Record<string, string>)
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`ISTIO_CNI_SETTINGS: ${error.variable}`, error.value, error.accepted)
    throw new ConfigError('ISTIO_CNI_SETTINGS', JSON.stringify(entry['settings']), error instanceof Error ? error.message : String(error))
  }
}

export const runCniInstall = async (options: CniInstallSettings, logger: Logger): Promise<number> => {
  // Listening from the start: a SIGTERM during the first check still uninstalls once it is done.
  const stopped = new Promise<NodeJS.Signals>(resolve => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
  })
  const entry = buildEntry(options)
  refuseEntry(entry)
  // The bundle's chunks sit in dist/, beside dist/cni/ that npm run build compiles the plugin into.
  const source = options.plugin ?? new URL(`./cni/${PLUGIN_TYPE}`, import.meta.url).pathname
  const plugin = await readFile(source).catch((error: NodeJS.ErrnoException) => {
    throw new EnvironmentError(`cni-install: cannot read the plugin ${source}: ${error.code ?? error.message} (set ISTIO_CNI_PLUGIN)`)
  })
  const target: InstallTarget = { confDir: options.confDir, binDir: options.binDir, plugin, entry }
  for (const dir of [options.confDir, options.binDir]) await removeLeftovers(dir)
  const said = new Set<string>()
  let lastFailure = ''
  // Checks run one at a time; a change seen during one runs another after it. Whatever a check meets (a write
  // that fails, a file it cannot read, a bug), it is logged and the next check tries again: the installer keeps the
  // node's config as it should be for as long as it runs, and uninstalls on SIGTERM.
  let running: Promise<unknown> = Promise.resolve()
  let pending = false
  const check = () => {
    if (pending) return
    pending = true
    running = running.then(async () => {
      pending = false
      try {
        await reconcile(target, logger, said)
        lastFailure = ''
      } catch (error) {
        // A refusal (a read-only or foreign-owned host directory) is named as what is missing, not as a bare errno.
        const named = classifyEscaped(error)
        const message = `${isSidecarError(named) ? named.message : messageOf(named)}; trying again at the next change or check`
        if (message !== lastFailure) logger.event('failed', message)
        lastFailure = message
      }
    })
  }
  check()
  const watcher = watch(options.confDir, check)
  watcher.on('error', error => logger.event('failed', `watching ${options.confDir}: ${error.message}; the periodic check goes on`))
  const timer = setInterval(check, options.checkSeconds * 1000)
  logger.event('watching', `${options.confDir} watched; checked every ${options.checkSeconds} s; SIGTERM or SIGINT uninstalls`)
  const signal = await stopped
  watcher.close()
  clearInterval(timer)
  await running
  await uninstall(target, logger)
  logger.event('stopped', `cni-install stopped on ${signal}: ${PLUGIN_TYPE} uninstalled`)
  return 0
}
