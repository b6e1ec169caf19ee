import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { PlanFacts } from '../../src/plan/types.js'
import { parseCidr } from '../../src/settings/cidr.js'
import type { Cidr } from '../../src/settings/types.js'

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

/** The routes a case stands for (`NAME.routes` beside `NAME.env`: `interface destination` lines), as init reads them. */
export const readRoutesFile = (envPath: string): PlanFacts => {
  const path = envPath.replace(/\.env$/, '.routes')
  if (!existsSync(path)) return {}
  const routes = new Map<string, Cidr[]>()
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue
    const [name = '', cidr = ''] = line.trim().split(/\s+/)
    routes.set(name, [...(routes.get(name) ?? []), parseCidr(cidr)!])
  }
  return { interfaceRoutes: routes }
}
