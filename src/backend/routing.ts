// TPROXY's policy routing, beside whichever backend writes the rules: per family one `ip rule` (priority, fwmark,
// table) and one `local default dev lo` route in that table, added before the rules and taken out again if the
// rules are refused. Read back as `ip` prints them; ours only when priority, mark and table all match exactly.

import { ApplyError, EnvironmentError } from '../errors.js'
import { CommandFailed, failedFor, isNotInstalled, type Exec } from '../exec/exec.js'
import { runIproute } from './iproute/classify.js'
import type { LocalRouting, Plan } from '../plan/types.js'
import type { Family } from '../settings/types.js'
import { hex, messageOf } from '../text.js'
import type { HostFs } from './detect.js'
import type { RoutingRead, RuleBackend } from './types.js'

const FLAG: Record<Family, string> = { ipv4: '-4', ipv6: '-6' }

/** The words of our rule and route, as `ip ... add` and `ip ... del` take them. */
const ruleWords = (r: LocalRouting): string[] => ['priority', String(r.priority), 'fwmark', String(r.mark), 'lookup', String(r.table)]
const routeWords = (r: LocalRouting): string[] => ['local', 'default', 'dev', 'lo', 'table', String(r.table)]

/** Our rule as `ip rule show` prints it (-N: the table as a number even if rt_tables names it). */
export const ruleLine = (r: LocalRouting): string => `${r.priority}:\tfrom all fwmark ${hex(r.mark)} lookup ${r.table}`

/** Our route as `ip route show table T` prints it (not -N: that prints the type and scope as numbers); IPv6 routes carry the kernel's default metric and preference. */
export const ROUTE_LINE: Record<Family, string> = {
  ipv4: 'local default dev lo scope host',
  ipv6: 'local default dev lo metric 1024 pref medium',
}

export type Step = { readonly verb: 'add' | 'del'; readonly object: 'rule' | 'route' }

const argv = (family: Family, r: LocalRouting, { verb, object }: Step): string[] => [
  FLAG[family],
  object,
  verb,
  ...(object === 'rule' ? ruleWords(r) : routeWords(r)),
]

/** The commands apply runs in a namespace holding none of it: the route first, so the rule never points at nothing. */
export const renderRoutingCommands = (family: Family, r: LocalRouting): string[] =>
  (['route', 'rule'] as const).map(object => `ip ${argv(family, r, { verb: 'add', object }).join(' ')}`)

/** renderRoutingComments: the `ip` commands apply runs before the rules, as comments after the rules' payload. Pure. */
export const renderRoutingComments = (plan: Plan): string =>
  plan.families
    .flatMap(p => (p.routing ? renderRoutingCommands(p.family, p.routing) : []))
    .map(command => `# ${command}\n`)
    .join('')

type Found = Pick<RoutingRead, 'rule' | 'route' | 'foreign'>

const lines = (text: string): string[] =>
  text
    .split('\n')
    .map(l => l.trimEnd())
    .filter(l => l !== '')

/** The seam's "not installed" names the package; this says what needed the program. */
const ip = async (exec: Exec, args: string[]): Promise<string> => {
  try {
    return (await runIproute(exec, 'ip', args)).stdout
  } catch (error) {
    if (isNotInstalled(error))
      throw new EnvironmentError("TPROXY's policy routing is written with ip, which is not installed (the iproute2 package)", { cause: error })
    throw error
  }
}

const readRouting = async (exec: Exec, family: Family, r: LocalRouting): Promise<Found> => {
  const [rules, routes] = await Promise.all([
    ip(exec, ['-N', FLAG[family], 'rule', 'show']).then(lines),
    ip(exec, [FLAG[family], 'route', 'show', 'table', String(r.table)]).then(lines, (error: unknown): string[] => {
      // A table that never held a route does not exist for the kernel.
      if (failedFor(error, 'absent')) return []
      throw error
    }),
  ])
  return { rule: rules.includes(ruleLine(r)), route: routes.includes(ROUTE_LINE[family]), foreign: routes.filter(l => l !== ROUTE_LINE[family]) }
}

const run = async (exec: Exec, family: Family, r: LocalRouting, step: Step): Promise<void> => {
  try {
    await ip(exec, argv(family, r, step))
  } catch (error) {
    if (!(error instanceof CommandFailed)) throw error
    throw new ApplyError(`${family} routing: ip ${argv(family, r, step).join(' ')} was refused: ${error.stderr.trim()}`, { cause: error })
  }
}

/**
 * removalOf: the `ip` steps that remove what `found` says is ours there (what clean read, or what a refused apply
 * added), rule first, so the rule never points at a table without its route. Pure.
 */
export const removalOf = (found: Pick<Found, 'rule' | 'route'>): Step[] => [
  ...(found.rule ? [{ verb: 'del', object: 'rule' } as const] : []),
  ...(found.route ? [{ verb: 'del', object: 'route' } as const] : []),
]

const remove = async (exec: Exec, family: Family, r: LocalRouting, found: Pick<Found, 'rule' | 'route'>): Promise<void> => {
  for (const step of removalOf(found)) await run(exec, family, r, step)
}

// Whether a route of ours can be in the table, from /proc and without a process: IPv4 lists each table that holds a
// route by its id in fib_trie; IPv6 lists every table's routes in ipv6_route (without the table), ours being a
// local default route on lo. Our rule is added after our route and removed before it, so where no route of ours
// can be, no rule of ours is either, and clean (every pod's DEL) need not start `ip` four times to find nothing.
const PROC_ROUTES: Record<Family, string> = { ipv4: '/proc/net/fib_trie', ipv6: '/proc/net/ipv6_route' }
const RTF_LOCAL = 0x80000000

/** mayHoldRoute: false only when the /proc text shows no route of our route's shape in `table`. Pure. */
export const mayHoldRoute = (family: Family, table: number, proc: string | undefined): boolean => {
  if (proc === undefined) return false
  if (family === 'ipv4') return new RegExp(`^Id ${table}:`, 'm').test(proc)
  return proc.split('\n').some(line => {
    const [dest, prefix, , , , , , , flags = '0', dev] = line.trim().split(/\s+/)
    return dest === '0'.repeat(32) && prefix === '00' && (Number.parseInt(flags, 16) & RTF_LOCAL) !== 0 && dev === 'lo'
  })
}

const foreignRoutes = (family: Family, r: LocalRouting, foreign: readonly string[]): string =>
  `${family} routing table ${r.table} holds routes that are not ours (${foreign.join('; ')})`

const describe = (r: LocalRouting): string => `ip rule ${r.priority} (fwmark ${hex(r.mark)}) and the local route of table ${r.table}`

/**
 * withRouting adds TPROXY's policy routing to a rule backend. Apply: refuses a table holding foreign routes before
 * anything changes, adds what is missing, then applies the rules; if they are refused, what it added goes again.
 * `owned` is what clean removes, from the settings, so a switch back to REDIRECT still cleans it.
 */
export const withRouting = (inner: RuleBackend, exec: Exec, owned: LocalRouting, fs?: Pick<HostFs, 'readFile'>): RuleBackend => {
  // A /proc file that cannot be read says nothing: then `ip` is asked.
  const mayHold = (family: Family): Promise<boolean> =>
    fs
      ? fs.readFile(PROC_ROUTES[family]).then(
          text => mayHoldRoute(family, owned.table, text),
          () => true,
        )
      : Promise.resolve(true)
  const routed = (plan: Plan) => plan.families.flatMap(p => (p.routing ? [{ family: p.family, routing: p.routing }] : []))
  return {
    name: inner.name,
    classify: inner.classify,
    render: plan => inner.render(plan) + renderRoutingComments(plan),
    apply: async plan => {
      const wanted = routed(plan)
      if (wanted.length === 0) return inner.apply(plan)
      const before = await Promise.all(wanted.map(w => readRouting(exec, w.family, w.routing)))
      const refused = wanted.flatMap((w, i) => (before[i]!.foreign.length > 0 ? [foreignRoutes(w.family, w.routing, before[i]!.foreign)] : []))
      if (refused.length > 0)
        throw new EnvironmentError(`${refused.join('; ')}: remove them or choose another ISTIO_INBOUND_TPROXY_ROUTE_TABLE; nothing was changed`)
      const added = wanted.map(() => ({ rule: false, route: false }))
      const undo = async (error: unknown): Promise<never> => {
        const undone = await Promise.allSettled(wanted.map((w, i) => remove(exec, w.family, w.routing, added[i]!)))
        const failed = undone.flatMap(u => (u.status === 'rejected' ? [messageOf(u.reason)] : []))
        if (failed.length > 0)
          throw new ApplyError(`${messageOf(error)}; then removing the routing we added failed too: ${failed.join('; ')}`, { cause: error })
        throw error
      }
      try {
        for (const [i, w] of wanted.entries()) {
          if (!before[i]!.route) {
            await run(exec, w.family, w.routing, { verb: 'add', object: 'route' })
            added[i] = { ...added[i]!, route: true }
          }
          if (!before[i]!.rule) {
            await run(exec, w.family, w.routing, { verb: 'add', object: 'rule' })
            added[i] = { ...added[i]!, rule: true }
          }
        }
      } catch (error) {
        return undo(error)
      }
      const { applied, known } = await inner.apply(plan).catch(undo)
      const routing = wanted.map((w, i) => ({
        scope: `${w.family} routing`,
        count: 2,
        unit: 'rules' as const,
        where: describe(w.routing),
        changed: added[i]!.rule || added[i]!.route,
      }))
      return { applied: [...applied, ...routing], known }
    },
    read: async (plan, known) => {
      const wanted = routed(plan)
      if (wanted.length === 0) return inner.read(plan, known)
      const [reads, found] = await Promise.all([inner.read(plan, known), Promise.all(wanted.map(w => readRouting(exec, w.family, w.routing)))])
      return { ...reads, routing: wanted.map((w, i) => ({ family: w.family, routing: w.routing, ...found[i]! })) }
    },
    clean: async plan => {
      // The routing is read beside the rules' own reads (one round of processes), and removed after them.
      const [cleaned, read] = await Promise.allSettled([
        inner.clean(plan),
        // Only ip writes the routing: where it is missing (the init image has none), no init here can have written any.
        Promise.all(
          plan.families.map(async p => ((await mayHold(p.family)) ? readRouting(exec, p.family, owned) : { rule: false, route: false, foreign: [] })),
        ).catch((error: unknown) => {
          if (error instanceof EnvironmentError && isNotInstalled(error.cause)) return undefined
          throw error
        }),
      ])
      if (cleaned.status === 'rejected') throw cleaned.reason
      if (read.status === 'rejected') throw read.reason
      const [lines, found] = [cleaned.value, read.value]
      if (found === undefined) return [...lines, 'routing: not checked, ip (iproute2) is not installed here, so no run here wrote any']
      for (const [i, p] of plan.families.entries()) await remove(exec, p.family, owned, found[i]!)
      return [
        ...lines,
        ...plan.families.map((p, i) => {
          const f = found[i]!
          return `${p.family} routing: ${f.rule || f.route ? `removed ${[f.rule ? `ip rule ${owned.priority}` : '', f.route ? `the local route of table ${owned.table}` : ''].filter(Boolean).join(' and ')}` : 'nothing of ours was there'}`
        }),
      ]
    },
  }
}
