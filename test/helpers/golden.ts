import { readFileSync } from 'node:fs'

export const GOLDEN_DIR = new URL('../golden', import.meta.url).pathname

/** Reads KEY=value lines; `#` starts a comment line. */
export const readEnvFile = (path: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\n')
      .filter(line => line.trim() !== '' && !line.startsWith('#'))
      .map(line => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  )
