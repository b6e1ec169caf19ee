// Everything a command may do to the world, handed in as one value so tests can hand in fakes instead.

import { readdir, readFile } from 'node:fs/promises'
import type { HostFs } from './backend/detect.js'
import { realExec, type Exec } from './backend/exec.js'
import { acquireNetnsLock } from './backend/lock.js'
import type { Output } from './log.js'

export interface Io {
  readonly exec: Exec
  readonly fs: HostFs
  readonly lock: () => Promise<() => Promise<void>>
  readonly now: () => number
  readonly out: Output
}

const realFs: HostFs = {
  readFile: path => readFile(path, 'utf8').catch(() => undefined),
  readDir: path => readdir(path).catch(() => []),
}

export const realIo = (): Io => ({
  exec: realExec,
  fs: realFs,
  lock: () => acquireNetnsLock(),
  now: () => performance.now(),
  out: { write: text => process.stdout.write(text), error: text => process.stderr.write(text) },
})
