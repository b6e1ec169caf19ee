// Replaces this process with another program, keeping the PID: so the privileged agent does not linger as a root
// parent of the proxy. Node 20 has no execve, so libc's is called (Node 23.11+ has process.execve).

import { PrivilegeError } from '../errors.js'
import { findOnPath } from '../exec/on-path.js'
import { loadLibc } from '../net/libc.js'

const onPath = (file: string): string => {
  if (file.includes('/')) return file
  const found = findOnPath(file, process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin')
  if (found === undefined) throw new PrivilegeError(`${file} was not found on PATH (the image needs util-linux's setpriv)`)
  return found
}

/** replaceProcess never returns on success; it throws PrivilegeError when the exec fails. */
export const replaceProcess = (file: string, args: readonly string[], env: Readonly<Record<string, string | undefined>>): never => {
  const path = onPath(file)
  const envp = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]))
  const libc = loadLibc()
  // Node opens stdin, stdout and stderr close-on-exec; the next program must inherit them.
  for (const fd of [0, 1, 2]) libc.setFdFlags(fd, 0)
  libc.execve(path, [file, ...args, null], [...envp, null])
  throw new PrivilegeError(`could not exec ${path}: errno ${libc.errno()}`)
}
