// Whether a program can be run by name, looked up as execvp looks: each PATH directory, an executable file there.
// A file lookup, not a process: detection and the CNI agent's STATUS ask it on every start.

import { access, constants } from 'node:fs/promises'
import { delimiter, join } from 'node:path'

export const onPath = async (program: string): Promise<boolean> => {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter(Boolean)
  const found = await Promise.all(
    dirs.map(dir =>
      access(join(dir, program), constants.X_OK).then(
        () => true,
        () => false,
      ),
    ),
  )
  return found.includes(true)
}
