// The whole-path check: given every table netfilter evaluates in the namespace (both iptables variants, native
// nftables), find each rule that can keep a TCP connection we capture from reaching our capture. Netfilter runs
// a hook's chains in priority order; at the nat hooks only the first chain that binds a connection's destination
// decides it, while an accept in one nat chain lets the next one run. So, per family and hook, where the plan
// captures by nat REDIRECT (-100):
// - in the chain that holds our jump, a rule ahead of it that ends the chain or binds the connection wins over us
//   (init can fix that by moving our jump first);
// - in any other nat chain at our priority or earlier, a rule that binds the connection wins over us;
// - before conntrack (raw), a NOTRACK or a zone change makes nat skip the packet or see another connection;
// - before nat, a rewritten destination, a TPROXY, a copy, or (for the mark method) a set mark changes what we see.
// Where it captures inbound by TPROXY (mangle, -150), see tproxyEscape. On the devices (nft netdev and inet ingress
// and egress chains, tc filters, XDP), before and after all of netfilter, see deviceEscape. Pure.

import { hasOwnedComment } from '../plan/owned.js'
import type { FamilyPlan, Rule } from '../plan/types.js'
import type { Family } from '../settings/types.js'
import { OUR_NAT_PRIORITY, PRIORITY, type DeviceHook, type Effect, type Hook, type SeenChain, type SeenRule, type SeenTable } from './model.js'
import { canAffect, capturingChain, type Capture } from './scope.js'

export interface Finding {
  readonly family: Family
  readonly hook: Hook
  /** Table, chain and position, as a person would look them up. */
  readonly where: string
  readonly rule: string
  readonly why: string
  /** True when init can fix it by moving our own jump; false when only changing someone else's rule would. */
  readonly fixable: boolean
  /** Set when what the rule does cannot be judged (BPF programs): the programs an operator may accept. */
  readonly programs?: readonly string[]
}

/** BPF programs the operator accepts (ISTIO_ACCEPT_BPF_PROGRAMS): their tags, or every one. */
export type AcceptedPrograms = 'all' | ReadonlySet<string>

/** What of the iptables tables is ours, for the iptables backends (native nftables leaves our table out instead). */
export interface OwnRules {
  /** The tables we program (as SeenTable.where names them): in them, a jump of ours is ours, never an escape. */
  readonly tables: readonly string[]
  /**
   * For each chain of ours that can capture TCP, the table that jumps to it and the jump as printed: a rule ahead
   * of that jump, in that table's built-in chain, can pre-empt it.
   */
  readonly capture: Readonly<Record<string, { readonly table: string; readonly jump: string }>>
  /** Every jump of ours, exactly as printed (into the capture chains, the DNS chains, raw's zone chains...). */
  readonly jumps: ReadonlySet<string>
}

interface Reached {
  readonly rule: SeenRule
  readonly position: number
  readonly effects: readonly Effect[]
}

/**
 * The rules of a chain that can affect a captured packet, each with what it can do, following jumps (a RETURN in
 * a jumped-to chain goes back; in a base chain, or one reached by goto, it ends the base chain like an accept).
 */
const reach = (
  table: SeenTable,
  chain: SeenChain,
  affects: (r: SeenRule) => boolean,
  returnIsAccept: boolean,
  seen = new Set<string>(),
): Reached[] => {
  if (seen.has(chain.name)) return []
  seen.add(chain.name)
  return chain.rules.flatMap((rule, i): Reached[] => {
    if (!affects(rule)) return []
    const own: Reached = {
      rule,
      position: i + 1,
      effects: rule.flow.kind === 'return' && returnIsAccept ? [...rule.effects, 'accept'] : rule.effects,
    }
    if (rule.flow.kind !== 'jump' && rule.flow.kind !== 'goto') return [own]
    const target = table.chains.get(rule.flow.chain)
    // After a jump, the target's RETURN comes back here; after a goto it returns from this chain.
    const inner = target ? reach(table, target, affects, rule.flow.kind === 'goto' && returnIsAccept, seen) : []
    // An unknown chain could do anything; what the jumped-to chain does, this rule does.
    const effects = target ? [...own.effects, ...inner.flatMap(r => r.effects)] : (['accept', 'bind'] as Effect[])
    return [{ ...own, effects }]
  })
}

const has = (r: Reached, ...effects: Effect[]): boolean => effects.some(e => r.effects.includes(e))

const bypassesByMark = (plan: FamilyPlan): boolean =>
  plan.chains.some(c => c.rules.some((r: Rule) => r.target.kind === 'return' && r.matches.some(m => m.kind === 'mark')))

/** What a foreign rule in another base chain at the hook does to TCP we capture by nat REDIRECT, if it can escape. */
/** Where a foreign base chain sits, for judging what one of its rules does. */
interface At {
  readonly base: SeenChain
  readonly priority: number
  readonly hook: Hook
  readonly plan: FamilyPlan
}

const redirectEscape = (r: Reached, { base, priority, hook, plan }: At): string | undefined => {
  if (base.type === 'nat' && priority <= OUR_NAT_PRIORITY && has(r, 'bind')) {
    return `it can bind the destination of TCP we capture at nat priority ${priority}, ${priority < OUR_NAT_PRIORITY ? 'before' : 'alongside'} ours (${OUR_NAT_PRIORITY}), and netfilter keeps only the first binding`
  }
  if (priority < PRIORITY.conntrack && has(r, 'notrack', 'zone')) {
    return `it can ${has(r, 'notrack') ? 'exempt TCP we capture from connection tracking, so nat never sees it' : 'move TCP we capture into another conntrack zone'} (priority ${priority}, before conntrack)`
  }
  if (priority < OUR_NAT_PRIORITY && has(r, 'rewrite'))
    return `it can rewrite the destination of TCP we capture before our nat (priority ${priority})`
  if (priority < OUR_NAT_PRIORITY && has(r, 'duplicate'))
    return `it can send a copy of TCP we capture elsewhere before our nat (priority ${priority})`
  if (priority < OUR_NAT_PRIORITY && hook === 'prerouting' && has(r, 'tproxy')) {
    return `it can hand inbound TCP we capture to another socket before our nat (priority ${priority})`
  }
  if (priority < OUR_NAT_PRIORITY && hook === 'output' && has(r, 'mark') && bypassesByMark(plan)) {
    return `it can set the mark that exempts the proxy on TCP we capture, before our nat (priority ${priority})`
  }
  return undefined
}

/**
 * What a foreign rule in another base chain at prerouting does to inbound TCP we capture by TPROXY, if it can
 * escape. TPROXY assigns the packet a socket; the local route its mark selects delivers it, and TCP takes the
 * assigned socket. Measured in a namespace (the kernel suite repeats it with traffic), so:
 * - a TPROXY assigns again, and the last one a packet meets decides: one at our priority (-150, where the order
 *   between tables is their registration order) or later takes the connection; an earlier one is overridden by ours;
 * - a destination rewritten at our priority or earlier makes our rule judge another destination (our ports and
 *   exclusions), so it counts; rewritten later, or bound by nat later, the socket is already chosen: the proxy
 *   still gets the connection (with the new local address), so neither counts;
 * - an accept ends only its own base chain, so ours still runs;
 * - NOTRACK or a zone change does not stop TPROXY, which needs no conntrack: an untracked packet is never
 *   ESTABLISHED, so our exemption for established connections does not let it pass, and TPROXY finds the proxy's
 *   socket for every packet of the connection;
 * - a drop lets nothing escape (and moving our jump ahead of one would defeat someone's firewall), nor does a mark,
 *   which our TPROXY sets whole.
 */
const tproxyEscape = (r: Reached, { priority }: At): string | undefined => {
  const ours = PRIORITY.mangle
  const order = priority < ours ? 'before' : priority === ours ? 'alongside' : 'after'
  if (priority >= ours && has(r, 'tproxy')) {
    return `it can hand inbound TCP we capture to another socket at priority ${priority}, ${order} our TPROXY (${ours}), and the last TPROXY a packet meets decides its socket`
  }
  if (priority <= ours && has(r, 'rewrite')) {
    return `it can rewrite the destination of inbound TCP we capture ${order} our TPROXY (priority ${priority}), so our rules judge another destination`
  }
  if (priority <= ours && has(r, 'duplicate'))
    return `it can send a copy of inbound TCP we capture elsewhere ${order} our TPROXY (priority ${priority})`
  return undefined
}

// What a rule on a device can do to a packet that moves it past the proxy: change where it goes, send it out of or
// into another device, or copy it. (Marks, drops and verdicts there decide nothing about capture.)
const DEVICE_EFFECTS: readonly Effect[] = ['rewrite', 'forward', 'duplicate', 'bind', 'tproxy']

const verbs = (r: Reached): string =>
  [
    ...(has(r, 'rewrite', 'bind', 'tproxy') ? ['rewrite'] : []),
    ...(has(r, 'forward') ? ['redirect'] : []),
    ...(has(r, 'duplicate') ? ['copy'] : []),
  ].join(', ')

/**
 * What a rule on a device does to TCP we capture, if it can make it escape. Ingress runs before the IP stack, egress
 * after it: both on lo see every connection we redirect locally (to the proxy's port), in whatever family; ingress
 * on another device sees inbound TCP before our prerouting rules judge it (a port rewritten into an excluded one
 * reaches the app; a packet redirected onto another device arrives there instead); egress on another device sees
 * what our rules let go (an excluded destination or port, the proxy's own connections), which a rewrite can send to
 * any destination we would have captured.
 */
const deviceEscape = (r: Reached, hook: DeviceHook, devices: readonly string[], plan: FamilyPlan): string | undefined => {
  if (!has(r, ...DEVICE_EFFECTS)) return undefined
  const inbound = capturingChain(plan, 'prerouting')
  const outbound = capturingChain(plan, 'output')
  // A chain without a device list (or an unknown one) may be on lo.
  if ((devices.length === 0 || devices.includes('lo')) && (inbound || outbound)) {
    return `it can ${verbs(r)} TCP on lo, which carries every connection we redirect to the proxy, ${hook === 'ingress' ? 'before' : 'after'} netfilter sees it`
  }
  if (hook === 'ingress' && inbound) {
    const reached = devices.find(d => canAffect({ ...r.rule.conditions, iif: r.rule.conditions.iif ?? d }, plan.family, inbound.chain, plan))
    if (reached !== undefined) return `it can ${verbs(r)} inbound TCP we capture as it arrives on ${reached}, before our rules judge it`
  }
  if (hook === 'egress' && outbound) {
    return `it can ${verbs(r)} TCP leaving by ${devices.join(', ')} after our rules let it go (excluded destinations and ports, the proxy's own), so it can reach what we capture past the proxy`
  }
  return undefined
}

const accepts = (accepted: AcceptedPrograms, programs: readonly string[]): boolean => accepted === 'all' || programs.every(p => accepted.has(p))

/** Rules on the pod's devices (ingress, egress) that can let TCP we capture escape, or that cannot be judged. */
const deviceFindings = (plan: FamilyPlan, tables: readonly SeenTable[], accepted: AcceptedPrograms): Finding[] => {
  const family = plan.family
  if (!capturingChain(plan, 'prerouting') && !capturingChain(plan, 'output')) return []
  const tcp = (r: SeenRule): boolean => r.conditions.protocol !== 'other' && (r.conditions.family === undefined || r.conditions.family === family)
  return tables
    .filter(t => t.families.includes(family))
    .flatMap(table =>
      [...table.chains.values()]
        .filter((c): c is SeenChain & { hook: DeviceHook } => c.hook === 'ingress' || c.hook === 'egress')
        .flatMap(base =>
          reach(table, base, tcp, false).flatMap((r): Finding[] => {
            const at = { family, hook: base.hook, where: `${table.where} ${base.name} rule ${r.position}`, rule: r.rule.text, fixable: false }
            const why = deviceEscape(r, base.hook, base.devices ?? [], plan)
            if (why) return [{ ...at, why }]
            const programs = r.rule.programs ?? []
            if (!has(r, 'opaque') || accepts(accepted, programs)) return []
            return [
              {
                ...at,
                why: `it runs a BPF program (${programs.join(', ')}) on ${(base.devices ?? []).join(', ') || 'a device'} at ${base.hook}: what it does to TCP we capture cannot be judged from here; if you trust it, accept it with ISTIO_ACCEPT_BPF_PROGRAMS`,
                programs,
              },
            ]
          }),
        ),
    )
}

/** Per way of capturing: what ends the chain holding our jump ahead of it, and what counts in other base chains. */
const JUDGES: Readonly<Record<Capture['by'], { readonly ahead: readonly Effect[]; readonly elsewhere: typeof redirectEscape }>> = {
  redirect: { ahead: ['accept', 'bind'], elsewhere: redirectEscape },
  // A TPROXY target ends the chain (it accepts); iptables' mangle cannot bind or rewrite a destination.
  tproxy: { ahead: ['accept', 'tproxy'], elsewhere: tproxyEscape },
}

/**
 * findEscapes lists every rule, in any table or on any device, that can keep a captured TCP connection away from
 * our capture, and every BPF program there that cannot be judged and is not `accepted`.
 */
export const findEscapes = (plan: FamilyPlan, tables: readonly SeenTable[], own?: OwnRules, accepted: AcceptedPrograms = new Set()): Finding[] => {
  const family = plan.family
  const findings: Finding[] = []
  for (const hook of ['prerouting', 'output'] as const) {
    const capture = capturingChain(plan, hook)
    if (!capture) continue
    const { chain } = capture
    const judge = JUDGES[capture.by]
    const home = own?.capture[chain.name]
    const affects = (r: SeenRule): boolean => canAffect(r.conditions, family, chain, plan)
    const flag = (where: string, r: Reached, why: string, fixable = false): void =>
      void findings.push({ family, hook, where: `${where} rule ${r.position}`, rule: r.rule.text, why, fixable })
    for (const table of tables.filter(t => t.families.includes(family))) {
      for (const base of [...table.chains.values()].filter(c => c.hook === hook)) {
        const where = `${table.where} ${base.name}`
        const priority = base.priority ?? Number.NEGATIVE_INFINITY
        const isOwn = home !== undefined && table.where === home.table && base.name === chain.hook
        const ownAt = isOwn ? base.rules.findIndex(r => r.text === home.jump) : -1
        // Our own jumps (and so our chains) are ours in the tables we program: our DNS redirect ahead of the
        // capture jump, our zone rules in raw. The same text in another variant's table is a leftover, and counts.
        const ours = (r: SeenRule): boolean => own !== undefined && own.tables.includes(table.where) && own.jumps.has(r.text)
        const rules = ownAt >= 0 ? { ...base, rules: base.rules.slice(0, ownAt) } : base
        for (const r of reach(table, rules, r => !ours(r) && affects(r), true)) {
          if (isOwn && has(r, ...judge.ahead)) {
            flag(
              where,
              r,
              `it can end ${base.name} for TCP we capture before our jump (rule ${ownAt + 1}) is reached; init moves our jump first`,
              true,
            )
          } else if (!isOwn) {
            const why = judge.elsewhere(r, { base, priority, hook, plan })
            if (why) flag(where, r, why)
          }
        }
      }
    }
  }
  return [...findings, ...deviceFindings(plan, tables, accepted)]
}

/** describeFinding is the drift text for one finding: where, the rule as printed, and why it matters. Pure. */
const describeFinding = (f: Finding): string[] => {
  // Our own rules left by another backend (docs/capture.md says to clean with the old one when switching).
  const leftover = !f.fixable && hasOwnedComment(f.rule)
  const fix = f.fixable
    ? ''
    : leftover
      ? '; it is ours, left by another backend: run clean with that ISTIO_BACKEND'
      : f.programs
        ? `=${f.programs.join(',')}`
        : '; init cannot change it without touching a rule that is not ours'
  return [`${f.where}: ${f.rule}`, `  ${f.why}${fix}`]
}

/** describeEscapes is the whole-path section of a drift report: nothing when there are no findings. Pure. */
export const describeEscapes = (findings: readonly Finding[]): string[] =>
  findings.length === 0
    ? []
    : ['whole path: rules that can keep TCP we capture from reaching our redirect:', ...findings.flatMap(describeFinding).map(l => `  ${l}`)]
