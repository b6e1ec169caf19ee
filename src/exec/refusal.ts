// What the system refused, in words that name what is missing: a bare EACCES says neither who was refused nor
// what would have been allowed. Used where a file or socket operation fails, and at the top for one that escaped.

import { EnvironmentError } from '../errors.js'
import { CommandFailed } from './exec.js'

const who = (): string => {
  const uid = process.getuid?.()
  return uid === undefined ? 'this user' : uid === 0 ? 'root (uid 0)' : `uid ${uid}, not root`
}

const RULES = 'init, verify and clean run as root with CAP_NET_ADMIN'

/**
 * missingRight describes an errno code as what is missing, with `needs` saying who may; undefined for a code that
 * is not a refusal.
 */
export const missingRight = (code: string | undefined, needs = RULES): string | undefined => {
  switch (code) {
    case 'EACCES':
      return `permission denied to ${who()} (${needs})`
    case 'EPERM':
      return `not permitted to ${who()}: a capability is missing (${needs})`
    case 'EROFS':
      return 'the filesystem is read-only: mount a writable volume there'
    default:
      return undefined
  }
}

/**
 * classifyEscaped turns a refusal that reached the top unclassified into an EnvironmentError (exit 3): a tool that
 * refused (CommandFailed), or a file or socket operation refused for want of a right. Anything else is returned as
 * it is: a bug.
 */
export const classifyEscaped = (error: unknown): unknown => {
  if (error instanceof CommandFailed) return new EnvironmentError(error.message, { cause: error })
  const { code, syscall, path } = (error ?? {}) as NodeJS.ErrnoException
  const missing = missingRight(code, 'run it as a user with the right to it')
  if (missing === undefined) return error
  return new EnvironmentError(`cannot ${syscall ?? 'do that'}${path === undefined ? '' : ` ${path}`}: ${missing}`, { cause: error })
}
