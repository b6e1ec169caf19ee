// Reads what runs on the pod's devices before or after netfilter into the whole-path model: tc filters (their
// classifiers and actions, from `tc -j filter show`) and XDP programs (from `ip -j link show`). A classifier only
// picks packets; what a filter does is its actions: mirred redirects or copies, pedit and its kin rewrite, a BPF
// program may do anything and is reported as a program that cannot be judged. Matches are not read at all (u32
// offsets say little a person could check): every filter is taken to match every packet of its protocol.

import type { Family } from '../settings/types.js'
import { ANY_EFFECT, NEXT, type Conditions, type DeviceHook, type Effect, type SeenChain, type SeenRule, type SeenTable } from './model.js'

/** One action of a filter, as `tc -j` prints it; only what is judged is named. */
interface TcAction {
  readonly kind?: string
  readonly mirred_action?: string
  readonly to_dev?: string
  readonly prog?: { readonly id?: number; readonly tag?: string }
}

/** One entry of `tc -j filter show`; entries without options are headers of the ones that follow. */
export interface TcFilter {
  readonly protocol?: string
  readonly pref?: number
  readonly kind?: string
  readonly block?: number
  readonly options?: {
    readonly fh?: string
    readonly ht_divisor?: number
    readonly handle?: string
    readonly actions?: readonly TcAction[]
    readonly prog?: { readonly id?: number; readonly tag?: string }
    readonly bytecode?: unknown
    readonly 'direct-action'?: boolean
  }
}

/** One entry of `tc -j qdisc show`. */
export interface TcQdisc {
  readonly kind?: string
  readonly handle?: string
  readonly dev?: string
  readonly parent?: string
}

/** One read of filters: the device, where on it (`ingress`, `egress`, a qdisc or class handle), and the JSON. */
export interface TcRead {
  readonly dev: string
  readonly parent: string
  readonly hook: DeviceHook
  readonly filters: readonly TcFilter[]
}

// Actions that neither change where a packet goes nor what it is: pass/drop/goto (gact), rate limits, sampling,
// marks and priorities (skbedit), conntrack marks, checksum fixes.
const HARMLESS_ACTIONS = new Set(['gact', 'police', 'sample', 'simple', 'skbedit', 'connmark', 'ctinfo', 'csum', 'gate'])
// Actions that change the packet: header edits, stateless and conntrack NAT, encapsulation pushed or popped.
const REWRITING_ACTIONS = new Set(['pedit', 'nat', 'skbmod', 'ct', 'vlan', 'mpls', 'tunnel_key', 'ife'])

const programOf = (prog: { readonly id?: number; readonly tag?: string } | undefined): string | undefined =>
  prog === undefined ? undefined : (prog.tag ?? `id ${prog.id ?? '?'}`)

const actionEffects = (action: TcAction): { effects: readonly Effect[]; program?: string } => {
  const kind = action.kind ?? ''
  if (kind === 'mirred') return { effects: [action.mirred_action === 'mirror' ? 'duplicate' : 'forward'] }
  if (HARMLESS_ACTIONS.has(kind)) return { effects: [] }
  if (REWRITING_ACTIONS.has(kind)) return { effects: ['rewrite'] }
  // act_bpf: an eBPF program (a tag) cannot be judged; classic BPF bytecode only returns a verdict.
  if (kind === 'bpf') {
    const program = programOf(action.prog)
    return program === undefined ? { effects: [] } : { effects: ['opaque'], program }
  }
  return { effects: ANY_EFFECT }
}

const FAMILY_OF: Readonly<Record<string, Family>> = { ip: 'ipv4', ipv6: 'ipv6' }
const NOT_IP = new Set(['arp', 'rarp'])

/** What a filter's protocol says about the packets it can see. */
const conditionsOf = (protocol: string | undefined): Conditions => {
  const family = protocol === undefined ? undefined : FAMILY_OF[protocol]
  if (protocol !== undefined && NOT_IP.has(protocol)) return { protocol: 'other' }
  return family === undefined ? { protocol: 'any' } : { protocol: 'any', family }
}

const describe = (filter: TcFilter): string => {
  const o = filter.options ?? {}
  const actions = (o.actions ?? []).map(a =>
    a.kind === 'mirred' ? `mirred ${a.mirred_action ?? '?'} dev ${a.to_dev ?? '?'}` : `${a.kind ?? '?'}${a.prog ? ` ${programOf(a.prog)}` : ''}`,
  )
  return [
    `protocol ${filter.protocol ?? '?'}`,
    `pref ${filter.pref ?? '?'}`,
    filter.kind ?? '?',
    ...(filter.block === undefined ? [] : [`block ${filter.block}`]),
    ...(o.fh !== undefined ? [`fh ${o.fh}`] : o.handle !== undefined ? [`handle ${o.handle}`] : []),
    ...(o.prog ? [`program ${programOf(o.prog)}`] : o.bytecode !== undefined ? ['classic bytecode'] : []),
    ...(actions.length > 0 ? [`action ${actions.join(', action ')}`] : []),
  ].join(' ')
}

/** readTcFilter turns one filter entry into a rule, or nothing for a header entry. Pure. */
export const readTcFilter = (filter: TcFilter): SeenRule | undefined => {
  // u32 lists its hash tables (`fh 800:`, with a divisor) beside its filters: they do nothing to a packet.
  if (filter.options === undefined || filter.options.ht_divisor !== undefined) return undefined
  const effects: Effect[] = []
  const programs: string[] = []
  // cls_bpf with an eBPF program can rewrite the packet and, in direct-action mode, redirect it.
  const own = filter.kind === 'bpf' ? programOf(filter.options.prog) : undefined
  if (own !== undefined) programs.push(own)
  for (const action of filter.options.actions ?? []) {
    const found = actionEffects(action)
    effects.push(...found.effects)
    if (found.program !== undefined) programs.push(found.program)
  }
  if (programs.length > 0) effects.push('opaque')
  return {
    text: describe(filter),
    conditions: conditionsOf(filter.protocol),
    effects: [...new Set(effects)],
    flow: NEXT,
    ...(programs.length > 0 && { programs: [...new Set(programs)] }),
  }
}

/** The read a parent name stands for: where on the device, and which hook sees it. */
const chainName = (read: TcRead): string => (read.parent === 'ingress' || read.parent === 'egress' ? read.parent : `parent ${read.parent}`)

/** seenTcTables groups filter reads by device, one table each, a chain per place on the device. Pure. */
export const seenTcTables = (reads: readonly TcRead[]): SeenTable[] => {
  const byDev = new Map<string, TcRead[]>()
  for (const read of reads) byDev.set(read.dev, [...(byDev.get(read.dev) ?? []), read])
  return [...byDev].map(([dev, devReads]) => ({
    where: `tc dev ${dev}`,
    families: ['ipv4', 'ipv6'],
    chains: new Map<string, SeenChain>(
      devReads.map(read => [
        chainName(read),
        {
          name: chainName(read),
          hook: read.hook,
          devices: [dev],
          rules: read.filters.flatMap(f => readTcFilter(f) ?? []),
        },
      ]),
    ),
  }))
}

/**
 * Where to read filters on each device, from `tc -j qdisc show`: a clsact qdisc's ingress and egress, an ingress
 * qdisc's ingress, and every other qdisc with a handle (filters there classify what leaves, and run their
 * actions). noqueue and the defaults have no handle and hold no filters. Classes are listed separately. Pure.
 */
export const filterPlaces = (qdiscs: readonly TcQdisc[]): { dev: string; parent: string; hook: DeviceHook }[] =>
  qdiscs.flatMap(q => {
    if (q.dev === undefined) return []
    const dev = q.dev
    if (q.kind === 'clsact')
      return [
        { dev, parent: 'ingress', hook: 'ingress' as const },
        { dev, parent: 'egress', hook: 'egress' as const },
      ]
    if (q.kind === 'ingress') return [{ dev, parent: 'ingress', hook: 'ingress' as const }]
    if (q.handle === undefined || q.handle === '0:') return []
    return [{ dev, parent: q.handle, hook: 'egress' as const }]
  })

/** The class ids `tc class show dev X` prints (`class htb 1:1 root ...`); filters may hang on each. Pure. */
export const classIds = (text: string): string[] =>
  text
    .split('\n')
    .map(line => /^class \S+ (\S+:\S*) /.exec(line)?.[1])
    .filter((id): id is string => id !== undefined)

/** One entry of `ip -j link show`, with its XDP program if one is attached. */
export interface LinkJson {
  readonly ifname?: string
  readonly xdp?: {
    readonly prog?: { readonly id?: number; readonly tag?: string }
    readonly attached?: readonly { readonly prog?: { readonly id?: number; readonly tag?: string } }[]
  }
}

/** seenXdpTables: a table per device with XDP programs, each an ingress rule that cannot be judged. Pure. */
export const seenXdpTables = (links: readonly LinkJson[]): SeenTable[] =>
  links.flatMap(link => {
    const progs = [...(link.xdp?.attached ?? []).map(a => a.prog), link.xdp?.prog].flatMap(p => programOf(p) ?? [])
    const unique = [...new Set(progs)]
    if (link.ifname === undefined || unique.length === 0) return []
    const rules: SeenRule[] = unique.map(program => ({
      text: `xdp program ${program}`,
      conditions: { protocol: 'any' },
      effects: ['opaque'],
      flow: NEXT,
      programs: [program],
    }))
    return [
      {
        where: `xdp dev ${link.ifname}`,
        families: ['ipv4', 'ipv6'],
        chains: new Map([['xdp', { name: 'xdp', hook: 'ingress', devices: [link.ifname], rules }]]),
      },
    ]
  })
