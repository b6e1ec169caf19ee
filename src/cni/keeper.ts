// The node agent keeps the pods it captured captured: containerd never calls CHECK, so nothing else notices when a
// pod's rules change after ADD. Every recheck period each kept pod is verified as CHECK would; drift is repaired in
// place by init (an atomic re-apply: each family's restore, or the one nft transaction, swaps its tables whole, so
// no packet ever meets half a ruleset). One log line per finding. A pod is forgotten at DEL, or once its netns is
// gone or the path names another one. Each kept pod has a record in the state directory, so a restarted agent
// finds them again: a record whose netns path still names the same namespace is kept, any other is dropped.

import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { EnvironmentError } from '../errors.js'
import type { Logger } from '../log.js'
import { messageOf } from '../text.js'
import type { CapturedPod, AgentIo } from './handle.js'
import type { Limit, Serial } from './limit.js'
import type { AgentMetrics } from './metrics.js'

/** A kept pod: what ADD captured, and which namespace its path named then. */
export interface KeptPod extends CapturedPod {
  readonly id: string
}

export interface PodStore {
  save(pod: KeptPod): Promise<void>
  remove(pod: KeptPod): Promise<void>
  /** The records, and a line for each file that is not one (it is removed). */
  load(): Promise<{ readonly pods: readonly KeptPod[]; readonly refused: readonly string[] }>
}

const fileOf = (dir: string, netns: string): string => `${dir}/${createHash('sha256').update(netns).digest('hex').slice(0, 32)}.json`

const isPod = (value: unknown): value is KeptPod => {
  if (typeof value !== 'object' || value === null) return false
  const { container, netns, id, env } = value as Record<string, unknown>
  return (
    typeof container === 'string' &&
    typeof netns === 'string' &&
    netns.startsWith('/') &&
    typeof id === 'string' &&
    typeof env === 'object' &&
    env !== null &&
    Object.values(env).every(v => typeof v === 'string')
  )
}

/**
 * prepareStateDir makes the agent's state directory: root's, 0711 (a user-namespaced pod's root passes through it
 * to its xtables lock file, and lists nothing). Throws EnvironmentError if it is anyone else's to write.
 */
export const prepareStateDir = async (dir: string): Promise<void> => {
  await mkdir(dirname(dir), { recursive: true, mode: 0o755 })
  await mkdir(dir, { mode: 0o711 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error
  })
  const found = await stat(dir)
  if (!found.isDirectory() || found.uid !== 0 || (found.mode & 0o022) !== 0) {
    throw new EnvironmentError(
      `the node agent's state directory ${JSON.stringify(dir)} is not a directory only root may write (owner UID ${found.uid}, mode 0${(found.mode & 0o777).toString(8)})`,
    )
  }
}

/** createFileStore keeps one JSON file per pod in `dir` (root's only), written whole by rename. */
export const createFileStore = (dir: string): PodStore => ({
  save: async pod => {
    await mkdir(dir, { mode: 0o700 }).catch(() => undefined)
    const file = fileOf(dir, pod.netns)
    await writeFile(`${file}.new`, `${JSON.stringify(pod)}\n`, { mode: 0o600 })
    await rename(`${file}.new`, file)
  },
  remove: pod => unlink(fileOf(dir, pod.netns)).catch(() => undefined),
  load: async () => {
    const names = await readdir(dir).catch(() => [])
    const pods: KeptPod[] = []
    const refused: string[] = []
    for (const name of names.filter(n => n.endsWith('.json') || n.endsWith('.new'))) {
      const path = `${dir}/${name}`
      const value: unknown = await readFile(path, 'utf8').then(JSON.parse, () => undefined)
      if (name.endsWith('.json') && isPod(value) && fileOf(dir, value.netns) === path) pods.push(value)
      else {
        refused.push(`${path} is not a record of this agent's (removed)`)
        await unlink(path).catch(() => undefined)
      }
    }
    return { pods, refused }
  },
})

export interface KeeperDeps {
  readonly engine: Pick<AgentIo, 'runCli' | 'inspectNetns'>
  readonly limit: Limit
  readonly serial: Serial
  readonly store: PodStore
  readonly logger: Logger
  readonly metrics: Pick<AgentMetrics, 'recheck' | 'repair'>
  /** How long a recheck may wait for a slot before it is left for the next period. */
  readonly deadlineMs: number
}

export interface Keeper {
  keep(pod: CapturedPod): Promise<void>
  forget(container: string, netns: string): Promise<void>
  /** Takes up the records of an earlier run whose netns is still there. */
  resume(): Promise<void>
  /** One recheck of every kept pod, one pod at a time, each in a slot of the agent's limit. */
  recheck(): Promise<void>
  readonly size: number
}

/** The failure a command's output reports, on one line: its error line and the first lines of its drift. */
export const summarize = (output: string): string => {
  const lines = output
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean)
  const json = lines.flatMap(l => {
    try {
      const value = JSON.parse(l) as { event?: unknown; message?: unknown; details?: unknown }
      return value.event === 'error' ? [value] : []
    } catch {
      return []
    }
  })[0]
  const [message, details] = json
    ? [String(json.message), Array.isArray(json.details) ? json.details.map(String) : []]
    : [lines.find(l => /\[E_[A-Z]+\]$/.test(l)) ?? lines[0] ?? '', lines]
  const diff = details.map(d => d.trim()).filter(d => /^[-+] /.test(d))
  return [message, ...diff.slice(0, 3), ...(diff.length > 3 ? [`and ${diff.length - 3} more`] : [])].join('; ')
}

const VERIFY_DRIFT = 5

export const createKeeper = ({ engine, limit, serial, store, logger, metrics, deadlineMs }: KeeperDeps): Keeper => {
  const pods = new Map<string, KeptPod>()
  const saved = (what: string, work: Promise<void>): Promise<void> =>
    work.catch((error: unknown) => logger.event('state', `could not ${what}: ${messageOf(error)}`))
  const drop = async (pod: KeptPod, why: string): Promise<void> => {
    if (pods.get(pod.netns) === pod) pods.delete(pod.netns)
    await saved(`remove the record of ${pod.netns}`, store.remove(pod))
    logger.event('forgotten', `${pod.netns} (container ${pod.container}): ${why}; no longer kept captured`, {
      netns: pod.netns,
      container: pod.container,
    })
  }
  const recheckOne = async (pod: KeptPod): Promise<void> => {
    if (pods.get(pod.netns) !== pod) return
    const state = await engine.inspectNetns(pod.netns)
    if (state.kind !== 'netns' || state.id !== pod.id)
      return drop(pod, state.kind === 'netns' ? 'the path names another network namespace now' : 'its network namespace is gone')
    const verified = await engine.runCli(pod.netns, 'verify', pod.env)
    if (verified.exitCode === 0) return metrics.recheck('ok')
    const fields = { netns: pod.netns, container: pod.container }
    if (verified.exitCode !== VERIFY_DRIFT) {
      metrics.recheck('unverified')
      return logger.event(
        'unverified',
        `${pod.netns} (container ${pod.container}): verify exited ${verified.exitCode}: ${summarize(verified.output)}`,
        fields,
      )
    }
    metrics.recheck('drift')
    const repaired = await engine.runCli(pod.netns, 'init', pod.env)
    metrics.repair(repaired.exitCode === 0 ? 'repaired' : 'failed')
    const outcome = repaired.exitCode === 0 ? 'repaired in place' : `repair failed (init exited ${repaired.exitCode}: ${summarize(repaired.output)})`
    logger.event('drift', `${pod.netns} (container ${pod.container}): ${summarize(verified.output)}; ${outcome}`, {
      ...fields,
      repaired: repaired.exitCode === 0,
    })
  }
  return {
    keep: async pod => {
      const state = await engine.inspectNetns(pod.netns)
      if (state.kind !== 'netns') return
      const kept = { ...pod, id: state.id }
      pods.set(pod.netns, kept)
      await saved(`record ${pod.netns}`, store.save(kept))
    },
    forget: async (container, netns) => {
      for (const pod of [...pods.values()]) {
        if ((netns !== '' && pod.netns === netns) || (container !== '' && pod.container === container)) {
          pods.delete(pod.netns)
          await saved(`remove the record of ${pod.netns}`, store.remove(pod))
        }
      }
    },
    resume: async () => {
      const { pods: records, refused } = await store.load()
      for (const line of refused) logger.event('state', line)
      for (const pod of records) {
        const state = await engine.inspectNetns(pod.netns)
        if (state.kind === 'netns' && state.id === pod.id) pods.set(pod.netns, pod)
        else await drop(pod, 'its network namespace went while the agent was not running')
      }
      if (records.length > 0) logger.event('resumed', `keeping ${pods.size} captured pods found again from their records and the netns paths`)
    },
    recheck: async () => {
      for (const pod of [...pods.values()]) {
        await serial
          .run(pod.netns, () => limit.run(() => recheckOne(pod), deadlineMs))
          .catch((error: unknown) => logger.event('unverified', `${pod.netns}: recheck not done: ${messageOf(error)}`))
      }
    },
    get size() {
      return pods.size
    },
  }
}
