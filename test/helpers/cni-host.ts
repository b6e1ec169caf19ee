// A stand-in host for the CNI installer's tests: temp directories for the conf and bin dirs and for the rest of
// the host ("outside"), a logger that keeps its lines, and the periodic check run as often as a test likes.
import { createHash } from 'node:crypto'
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { type InstallTarget, reconcile, STATE_FILE } from '../../src/cni/install.js'
import type { Logger } from '../../src/log.js'

export interface Host {
  readonly conf: string
  readonly bin: string
  /** The rest of the host: files there must never change. */
  readonly outside: string
  readonly target: InstallTarget
  readonly log: string[]
  readonly logger: Logger
}

export const PLUGIN = Buffer.from('#!/bin/sh\n# the plugin as shipped\n')
export const ENTRY = { type: 'sidecar-redirect', agentSocket: '/run/sidecar-redirect/agent.sock', settings: {} }
export const PRIMARY = '{\n  "cniVersion": "1.0.0",\n  "name": "k8s",\n  "plugins": [\n    { "type": "bridge" }\n  ]\n}\n'

export const host = (t: Test): Host => {
  const dir = mkdtempSync(`${tmpdir()}/sr-cni-hostile-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const [conf, bin, outside] = [`${dir}/net.d`, `${dir}/bin`, `${dir}/outside`]
  for (const d of [conf, bin, outside]) mkdirSync(d)
  writeFileSync(`${bin}/bridge`, '\x7fELF the bridge plugin')
  chmodSync(`${bin}/bridge`, 0o755)
  writeFileSync(`${outside}/shadow`, 'root:secret:19000::::::\n')
  chmodSync(`${outside}/shadow`, 0o600)
  const log: string[] = []
  const logger = { event: (event: string, message: string) => void log.push(`${event}: ${message}`), report: () => undefined } as unknown as Logger
  return { conf, bin, outside, target: { confDir: conf, binDir: bin, plugin: PLUGIN, entry: ENTRY }, log, logger }
}

/** Hash, mode, owner, inode (and a link's target) of every entry under the dirs, but the installer's own names. */
export const identities = (dirs: readonly string[], own: readonly string[] = []) =>
  Object.fromEntries(
    dirs.flatMap(dir =>
      readdirSync(dir)
        .filter(name => !own.includes(name) && name !== STATE_FILE && name !== 'sidecar-redirect' && !name.startsWith('.sidecar-redirect.tmp-'))
        .map(name => {
          const path = join(dir, name)
          const s = lstatSync(path)
          const what = s.isSymbolicLink()
            ? `-> ${readlinkSync(path)}`
            : s.isFile()
              ? createHash('sha256').update(readFileSync(path)).digest('hex')
              : 'special'
          return [path, { what, mode: s.mode, uid: s.uid, gid: s.gid, ino: s.ino }]
        }),
    ),
  )

export const checks = async (h: Host, n = 1): Promise<void> => {
  const said = new Set<string>()
  for (let i = 0; i < n; i++) await reconcile(h.target, h.logger, said)
}
