// A child with an IPC channel beside inherited stdout and stderr: the peer's `hand-off` passes a connected socket
// to it. Here, in the exec layer, because only this layer starts processes (test/architecture.test.ts).

import { type ChildProcess, spawn } from 'node:child_process'

/** spawnWithChannel starts `file` with stdin closed, stdout and stderr inherited, and an IPC channel. */
export const spawnWithChannel = (file: string, args: readonly string[]): ChildProcess =>
  spawn(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
