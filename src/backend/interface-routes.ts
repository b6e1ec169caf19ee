// The destinations each excluded interface's routes cover, for ISTIO_EXCLUDE_INTERFACES_SCOPE=routes: the main
// table only, as `ip -j route show table main` prints it, one process per family, run only when interfaces are
// excluded that way. A policy rule's own table is not the interface's: a route there is how a UID or a source is
// sent through the interface, which is the back door the scope closes.

import { EnvironmentError } from '../errors.js'
import { CommandFailed, isNotInstalled, type Exec } from '../exec/exec.js'
import { runIproute } from './iproute/classify.js'
import { parseCidr } from '../settings/cidr.js'
import type { PlanFacts } from '../plan/types.js'
import type { Cidr, Family } from '../settings/types.js'
import { firstLine } from '../text.js'

interface RouteJson {
  readonly type?: string
  readonly dst?: string
  readonly dev?: string
  readonly nexthops?: readonly { readonly dev?: string }[]
}

const DEFAULT: Record<Family, string> = { ipv4: '0.0.0.0/0', ipv6: '::/0' }

/** parseRoutes: per device, the destinations of the unicast routes through it (a multipath route counts for each). Pure. */
export const parseRoutes = (json: string, family: Family): Map<string, Cidr[]> => {
  const routes = json.trim() === '' ? [] : (JSON.parse(json) as RouteJson[])
  const byDevice = new Map<string, Cidr[]>()
  for (const route of routes) {
    // unreachable, blackhole, prohibit and throw routes send nothing out of a device.
    if (route.type !== undefined && route.type !== 'unicast') continue
    const cidr = parseCidr(route.dst === 'default' ? DEFAULT[family] : (route.dst ?? ''))
    if (cidr === undefined || cidr.family !== family) continue
    const devices = new Set([route.dev, ...(route.nexthops ?? []).map(n => n.dev)].filter((d): d is string => d !== undefined))
    for (const dev of devices) byDevice.set(dev, [...(byDevice.get(dev) ?? []), cidr])
  }
  return byDevice
}

/** readInterfaceRoutes reads the main table of each family and keeps the routes of `interfaces`. */
export const readInterfaceRoutes = async (exec: Exec, families: readonly Family[], interfaces: readonly string[]): Promise<Map<string, Cidr[]>> => {
  const read = await Promise.all(
    families.map(async family => {
      try {
        return parseRoutes((await runIproute(exec, 'ip', ['-j', family === 'ipv4' ? '-4' : '-6', 'route', 'show', 'table', 'main'])).stdout, family)
      } catch (error) {
        if (isNotInstalled(error)) {
          throw new EnvironmentError(
            "ISTIO_EXCLUDE_INTERFACES_SCOPE=routes reads the interfaces' routes with ip, which is not installed (the iproute2 package)",
            {
              cause: error,
            },
          )
        }
        if (error instanceof CommandFailed)
          throw new EnvironmentError(`cannot read the ${family} routes: ${firstLine(error.message)}`, { cause: error })
        throw error
      }
    }),
  )
  return new Map(interfaces.map(name => [name, read.flatMap(routes => routes.get(name) ?? [])]))
}

/** What the plan needs of the host besides the families: the routes of `interfaces` (a mode's `routed`), if any. */
export const readPlanFacts = async (interfaces: readonly string[], families: readonly Family[], exec: Exec): Promise<PlanFacts> =>
  interfaces.length > 0 ? { interfaceRoutes: await readInterfaceRoutes(exec, families, interfaces) } : {}
