// Whether a program can be run by name, looked up as execvp looks: each PATH directory, an executable file there.
// A file lookup, not a process: detection and the CNI agent's STATUS ask it on every start. Synchronous on
// purpose: each access() is a few microseconds, while handing ~10 of them per program to libuv's thread pool (and
// starting that pool) cost init milliseconds before its first process (bench/init.mjs).

import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** The program's path in the first PATH directory that has it executable, or undefined. */
export const findOnPath = (program: string, path = process.env['PATH'] ?? ''): string | undefined => {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, program)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this directory
    }
  }
  return undefined
}

export const onPath = async (program: string): Promise<boolean> => findOnPath(program) !== undefined
