import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

export const GOLDEN_DIR = new URL('../golden', import.meta.url).pathname

/** Reads KEY=value lines; `#` starts a comment line. A relative ISTIO_RESOLV_CONF names a file beside the env file. */
export const readEnvFile = (path: string): Record<string, string> => {
  const env: Record<string, string> = Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\n')
      .filter(line => line.trim() !== '' && !line.startsWith('#'))
      .map(line => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  )
  const resolv = env['ISTIO_RESOLV_CONF']
  return resolv === undefined || resolv.startsWith('/') ? env : { ...env, ISTIO_RESOLV_CONF: resolve(dirname(path), resolv) }
}
