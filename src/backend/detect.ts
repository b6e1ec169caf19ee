// Decides, without writing anything, which iptables variant and which address families to program. The choice
// functions are pure; probeHost is the thin part that reads /proc and, only when needed, the saved tables.

import { EnvironmentError } from '../errors.js'
import { isOwnedChain } from '../plan/owned.js'
import type { BackendChoice, Family, Ipv6Mode } from '../settings/types.js'
import type { Exec } from '../exec/exec.js'
import { tool, type Variant } from './iptables/iptables.js'
import { runIptables } from './iptables/classify.js'
import { isUnreadable, LEGACY_NAMES, readLegacyNamesOf, type LegacyNames, type LegacyNamesOf } from './legacy-names.js'

export interface HostFs {
  /** The file's text, or undefined when it does not exist; any other failure throws EnvironmentError. */
  readFile(path: string): Promise<string | undefined>
  /** The directory's entries, or none when it does not exist; any other failure throws EnvironmentError. */
  readDir(path: string): Promise<string[]>
  /** Whether the kernel lets this namespace open an IPv6 socket. */
  canOpenIpv6(): Promise<boolean>
  /** Whether an executable of this name is on PATH, as exec would find it; a look, not a process. */
  onPath(program: string): Promise<boolean>
  /**
   * Whether the tools run in the user namespace that owns the netns (not so when a pod with hostUsers: false is
   * programmed from the node); asked only to explain a refusal. Absent means yes.
   */
  ownsNetns?(): Promise<boolean>
}

export interface SavedTables {
  readonly rules: number
  readonly ours: boolean
}

export interface VariantFacts {
  /** Tables iptables-legacy has created in this namespace (from /proc/net/ip{,6}_tables_names). */
  readonly legacyTables: readonly string[]
  readonly nft?: SavedTables
  readonly legacy?: SavedTables
}

export interface Decision<T> {
  readonly value: T
  readonly reason: string
}

/** The native nftables backend, or one of the two iptables variants. */
export type BackendKind = Variant | 'nftables'

/**
 * chooseVariant picks the iptables variant the namespace already uses, so our rules sit beside the others; the
 * native nftables backend is used when asked for, or by probeHost where iptables cannot work (auto never picks it
 * for native tables found: finding them would cost a process on every start). Pure.
 */
export const chooseVariant = (choice: BackendChoice, facts: VariantFacts): Decision<BackendKind> => {
  if (choice === 'nftables') return { value: 'nftables', reason: 'set by ISTIO_BACKEND' }
  if (choice !== 'auto') return { value: choice === 'iptables-nft' ? 'nft' : 'legacy', reason: 'set by ISTIO_BACKEND' }
  if (facts.legacyTables.length === 0) {
    return { value: 'nft', reason: 'no iptables-legacy tables in this namespace; nf_tables is the default' }
  }
  const nft = facts.nft ?? { rules: 0, ours: false }
  const legacy = facts.legacy ?? { rules: 0, ours: false }
  if (nft.ours !== legacy.ours) {
    return { value: nft.ours ? 'nft' : 'legacy', reason: `our rules are already in iptables-${nft.ours ? 'nft' : 'legacy'}` }
  }
  const counts = `${legacy.rules} legacy rules vs ${nft.rules} nf_tables rules`
  return legacy.rules > nft.rules
    ? { value: 'legacy', reason: `this namespace uses iptables-legacy (${counts})` }
    : { value: 'nft', reason: `nf_tables holds as many rules or more (${counts})` }
}

/** Counts rules and user chains in iptables-save text; notes whether any of ours are there. Pure. */
export const summarizeSave = (text: string): SavedTables => {
  const lines = text.split('\n')
  const chains = lines.filter(l => l.startsWith(':') && !/^:[A-Z]+ (ACCEPT|DROP)/.test(l))
  const rules = lines.filter(l => l.startsWith('-A '))
  return { rules: rules.length + chains.length, ours: chains.some(l => isOwnedChain(l.slice(1).split(' ')[0] ?? '')) }
}

export interface Ipv6Facts {
  /** Per interface, whether IPv6 is enabled on it; absent when the kernel has no IPv6 at all. */
  readonly interfaces?: Readonly<Record<string, boolean>>
  /** The kernel has IPv6, but /proc did not say on which interfaces. */
  readonly unlisted?: true
}

/** chooseFamilies: IPv6 counts as on if any interface has it, not just the first. Pure; throws EnvironmentError. */
export const chooseFamilies = (mode: Ipv6Mode, facts: Ipv6Facts): Decision<Family[]> => {
  if (mode === 'false') return { value: ['ipv4'], reason: 'IPv6 left alone (ISTIO_IPV6=false)' }
  const on = Object.entries(facts.interfaces ?? {})
    .filter(([, enabled]) => enabled)
    .map(([name]) => name)
  if (on.length > 0) return { value: ['ipv4', 'ipv6'], reason: `IPv6 is enabled on ${on.join(', ')}` }
  // Undecided is not "no": capturing IPv6 that is not there costs nothing, leaving it alone could let it escape.
  if (facts.unlisted) return { value: ['ipv4', 'ipv6'], reason: 'the kernel has IPv6, though /proc/sys/net/ipv6/conf lists no interface' }
  const why = facts.interfaces ? 'IPv6 is disabled on every interface' : 'the kernel has no IPv6'
  if (mode === 'true') throw new EnvironmentError(`ISTIO_IPV6=true but ${why} in this namespace`)
  return { value: ['ipv4'], reason: why }
}

export interface HostFacts {
  readonly variant: Decision<BackendKind>
  readonly families: Decision<Family[]>
  /** iptables-save text already read while deciding, by variant, so it is not read twice. */
  readonly ipv4Saved: Partial<Record<Variant, string>>
  /** Legacy's lists of tables as detection read them: the run passes them along rather than read them again. */
  readonly legacyNames: LegacyNamesOf
}

/** readIpv6: /proc/sys/net/ipv6/conf lists interfaces when the kernel has IPv6; when it lists none, the kernel is asked. */
export const readIpv6 = async (fs: HostFs): Promise<Ipv6Facts> => {
  const names = (await fs.readDir('/proc/sys/net/ipv6/conf')).filter(n => n !== 'all' && n !== 'default')
  if (names.length === 0) return (await fs.canOpenIpv6()) ? { unlisted: true } : {}
  const flags = await Promise.all(names.map(n => fs.readFile(`/proc/sys/net/ipv6/conf/${n}/disable_ipv6`)))
  // An interface that went away between the two reads (undefined) has no IPv6 to capture.
  return { interfaces: Object.fromEntries(names.map((n, i) => [n, flags[i]?.trim() === '0'])) }
}

/**
 * Why iptables-nft cannot program these families here, or undefined when it can: the kernel lacks x_tables, or
 * its programs are not on PATH. Reads files already read and looks up names: no process.
 */
const iptablesNftMissing = async (
  fs: HostFs,
  families: readonly Family[],
  names: Readonly<Record<Family, LegacyNames>>,
): Promise<string | undefined> => {
  // An unreadable list is there: only a kernel without x_tables lacks the file.
  const noXtables = families.filter(f => names[f] === undefined)
  if (noXtables.length > 0) return `the kernel has no x_tables, which iptables needs (${noXtables.map(f => LEGACY_NAMES[f]).join(' and ')} absent)`
  const programs = families.flatMap(f => (['save', 'restore'] as const).map(verb => tool(f, 'nft', verb)))
  const found = await Promise.all(programs.map(p => fs.onPath(p)))
  const missing = programs.filter((_, i) => !found[i])
  return missing.length === 0 ? undefined : `${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not on PATH`
}

/** probeHost gathers what the choices need. Reads /proc, and runs -save only when legacy tables exist; `fixed` families are taken as decided. */
export const probeHost = async (choice: BackendChoice, ipv6: Ipv6Mode, exec: Exec, fs: HostFs, fixed?: Decision<Family[]>): Promise<HostFacts> => {
  // A mode that fixes its families (Istio's decides from the pod's addresses) needs no look at /proc for them.
  const families = fixed ?? chooseFamilies(ipv6, await readIpv6(fs))
  const legacyNames = await readLegacyNamesOf(fs)
  const { ipv4: v4Names, ipv6: v6Names } = legacyNames
  const unreadable = [v4Names, v6Names].filter(isUnreadable)
  const legacyTables = [v4Names, v6Names].flatMap(names => (names === undefined || isUnreadable(names) ? [] : names))
  // A node without working iptables (an nft-only one) gets native nftables under auto. Legacy tables prove iptables
  // has worked here, so only the nf_tables default is checked, and only by looking: the common path starts nothing.
  if (choice === 'auto' && legacyTables.length === 0) {
    const missing = await iptablesNftMissing(fs, families.value, legacyNames)
    if (missing !== undefined) {
      if (!(await fs.onPath('nft')))
        throw new EnvironmentError(`no backend can work here: ${missing}, and nft (the nftables package) is not on PATH either`)
      return { variant: { value: 'nftables', reason: `${missing}; native nftables needs neither` }, families, ipv4Saved: {}, legacyNames }
    }
  }
  // Legacy tables this process may not list (a non-root init, a netns made before its user namespace's map) are
  // not asked for by name, which would make them (see legacy-names.ts): nf_tables, the default, is chosen, and the
  // live probe is what would notice a legacy rule taking the traffic first.
  if (choice === 'auto' && unreadable.length > 0 && legacyTables.length === 0) {
    const why = unreadable.map(u => u.unreadable).join('; ')
    return {
      variant: { value: 'nft', reason: `iptables-legacy tables cannot be listed (${why}) and naming one would create it; nf_tables is the default` },
      families,
      ipv4Saved: {},
      legacyNames,
    }
  }
  const ipv4Saved: Partial<Record<Variant, string>> = {}
  // Only when both variants may hold rules is it worth reading them; -save is never run speculatively on legacy,
  // because reading a legacy table creates it.
  if (choice === 'auto' && legacyTables.length > 0) {
    for (const variant of ['nft', 'legacy'] as const) ipv4Saved[variant] = (await runIptables(exec, tool('ipv4', variant, 'save'), [])).stdout
  }
  const saved = (v: Variant): SavedTables | undefined => (ipv4Saved[v] === undefined ? undefined : summarizeSave(ipv4Saved[v]))
  const nft = saved('nft')
  const legacy = saved('legacy')
  const variant = chooseVariant(choice, { legacyTables, ...(nft && { nft }), ...(legacy && { legacy }) })
  return { variant, families, ipv4Saved, legacyNames }
}
