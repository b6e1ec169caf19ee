// Renders a plan as one nftables table of our own, `inet sidecar_redirect`: both families in one table, so one
// `nft -f -` transaction changes IPv4 and IPv6 together. The text is written in the form `nft list table` prints
// (sets sorted and merged, marks zero-padded, `meta l4proto tcp` dropped before `tcp dport`), so read-back is a
// comparison of strings, as with iptables-save.

import type { Family, PortRange } from '../../settings/types.js'
import { formatCidr } from '../../settings/cidr.js'
import { commentFor, NFT_TABLE, NFT_TABLE_COMMENT, nftSetName, type ChainName } from '../../plan/owned.js'
import type { Match, Plan, Protocol, Rule, ServiceSet, Target } from '../../plan/types.js'
import { portRangeText } from '../../text.js'

// Each chain of the plan is a base chain of our table, at its hook and a priority that puts it where the iptables
// backends' jump puts it. The capture chains are at OUR_NAT_PRIORITY (-100), which the whole-path check compares
// foreign chains with; nft prints the name `dstnat` for it at prerouting only. Two chains of ours at one nat hook
// run in priority order, and an accept (a return from a base chain) lets the next one run, as a RETURN from one
// of our iptables chains lets the next jump run; the first that binds a connection decides it. Raw chains run at
// raw (-300), before conntrack; mangle chains run at mangle (-150), `type route` at output (a changed mark
// re-routes the packet), `type filter` at prerouting.
const BASE_CHAINS: Record<ChainName, { readonly chain: string; readonly header: string }> = {
  SIDECAR_DNS_ZONE_OUT: { chain: 'dns_zone_output', header: 'type filter hook output priority raw; policy accept;' },
  SIDECAR_TPROXY: { chain: 'tproxy_prerouting', header: 'type filter hook prerouting priority mangle; policy accept;' },
  SIDECAR_TPROXY_MARK: { chain: 'tproxy_output', header: 'type route hook output priority mangle; policy accept;' },
  SIDECAR_INBOUND: { chain: 'prerouting', header: 'type nat hook prerouting priority dstnat; policy accept;' },
  SIDECAR_DNS: { chain: 'dns_output', header: 'type nat hook output priority -101; policy accept;' },
  SIDECAR_OUTBOUND: { chain: 'output', header: 'type nat hook output priority -100; policy accept;' },
}

const hex8 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`

/** Sorted, with overlapping and adjacent ranges merged: nft prints an anonymous set that way. */
const normalizePorts = (ports: readonly PortRange[]): PortRange[] => {
  const merged: PortRange[] = []
  for (const r of [...ports].sort((a, b) => a.from - b.from)) {
    const last = merged[merged.length - 1]
    if (last && r.from <= last.to + 1) merged[merged.length - 1] = { from: last.from, to: Math.max(last.to, r.to) }
    else merged.push({ ...r })
  }
  return merged
}

const portText = (ports: readonly PortRange[]): string => {
  const items = normalizePorts(ports).map(r => portRangeText(r, '-'))
  return items.length === 1 ? `${items[0]}` : `{ ${items.join(', ')} }`
}

const addressKeyword = (family: Family): string => (family === 'ipv4' ? 'ip' : 'ip6')

const renderMatch = (match: Match, protocol: Protocol): string => {
  switch (match.kind) {
    case 'source':
      return `${addressKeyword(match.cidr.family)} saddr ${cidrText(match.cidr)}`
    case 'destination':
      return `${addressKeyword(match.cidr.family)} daddr ${cidrText(match.cidr)}`
    case 'dport':
      return `${protocol} dport ${portText(match.ports)}`
    case 'sport':
      return `${protocol} sport ${portText(match.ports)}`
    case 'uid-owner':
      return `meta skuid ${match.uid}`
    case 'gid-owner':
      return `meta skgid ${match.gid}`
    case 'mark':
      return match.mark.mask === undefined
        ? `meta mark ${hex8(match.mark.value)}`
        : `meta mark & ${hex8(match.mark.mask)} == ${hex8(match.mark.value)}`
    case 'cgroup':
      return `meta cgroup ${match.classid}`
    case 'in-interface':
      return `iifname "${match.name}"`
    case 'out-interface':
      return `oifname "${match.name}"`
    case 'service-set':
      return `${addressKeyword(match.family)} daddr${match.withPorts ? ` . ${protocol} dport` : ''} @${nftSetName(match.family, match.withPorts)}`
    case 'established':
      return 'ct state established,related'
    case 'sent-here':
      return 'ct status confirmed'
    case 'non-local-source':
      return 'fib saddr type != local'
    case 'connmark':
      return `ct mark ${hex8(match.mark)}`
  }
}

// nft prints a host address without its /32 or /128.
const cidrText = (cidr: { family: Family; address: string; prefix: number }): string =>
  cidr.prefix === (cidr.family === 'ipv4' ? 32 : 128) ? cidr.address : formatCidr(cidr)

const renderTarget = (target: Target): string => {
  switch (target.kind) {
    case 'return':
      return 'return'
    case 'redirect':
      return `redirect to :${target.port}`
    case 'ct-zone':
      return `ct original zone set ${target.zone}`
    // An inet table's tproxy needs no family for a port alone; it does not end the rule, so accept does.
    case 'tproxy':
      return `tproxy to :${target.port} meta mark set ${hex8(target.mark)} accept`
    case 'connmark-set':
      return `ct mark set ${hex8(target.mark)}`
    case 'mark-set':
      return `meta mark set ${hex8(target.mark)}`
  }
}

/** One rule line. A port match (`udp dport`) already implies its protocol; every other rule says `meta l4proto` first. */
const renderNftRule = (rule: Rule): string => {
  const matches = rule.matches.map(m => renderMatch(m, rule.protocol))
  const ported = rule.matches.some(m => m.kind === 'dport' || m.kind === 'sport' || (m.kind === 'service-set' && m.withPorts))
  return [...(ported ? [] : [`meta l4proto ${rule.protocol}`]), ...matches, renderTarget(rule.target), `comment "${commentFor(rule.purpose)}"`].join(
    ' ',
  )
}

/**
 * renderNftTable is the table exactly as `nft list table inet sidecar_redirect` prints it. The plan's families
 * are merged chain by chain; a family left out (IPv6 with ISTIO_IPV6=false or no IPv6) is let through untouched
 * by a first rule. Pure.
 */
export const renderNftTable = (plan: Plan): string => {
  const families = plan.families.map(f => f.family)
  const skip = (['ipv4', 'ipv6'] as const).filter(f => !families.includes(f))
  const names = [...new Set(plan.families.flatMap(f => f.chains.map(c => c.name)))]
  const chains = names.map(name => {
    const rules = plan.families.flatMap(f => f.chains.filter(c => c.name === name).flatMap(c => c.rules))
    // Each family's chain is its bypasses, then its captures: merged, every bypass of both families must still come
    // before any capture. A rule without an address (the same in both) is written once. A zone rule is neither.
    const ordered = [...rules.filter(r => r.target.kind === 'return'), ...rules.filter(r => r.target.kind !== 'return')]
    const seen = new Set<string>()
    const lines = [
      ...skip.map(f => `meta nfproto ${f} return comment "${commentFor(`leave-${f}-alone`)}"`),
      ...ordered.map(renderNftRule).filter(line => !seen.has(line) && seen.add(line)),
    ]
    const { chain, header } = BASE_CHAINS[name]
    return [`\tchain ${chain} {`, `\t\t${header}`, ...lines.map(l => `\t\t${l}`), '\t}'].join('\n')
  })
  const sets = plan.families.flatMap(f => f.sets).map(renderNftSet)
  return `table inet ${NFT_TABLE} {\n\tcomment "${NFT_TABLE_COMMENT}"\n${[...sets, ...chains].join('\n\n')}\n}\n`
}

/** A set element as nft prints it: `198.18.0.0/16`, `198.18.0.10 . 443`, `[...] . 8000-8080`. */
export const nftElement = (s: ServiceSet['services'][number]): string => {
  const address = cidrText(s.cidr)
  if (!s.ports) return address
  return `${address} . ${portRangeText(s.ports, '-')}`
}

const renderNftSet = (set: ServiceSet): string => {
  const type = `${set.family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr'}${set.withPorts ? ' . inet_service' : ''}`
  const elements = set.services.length === 0 ? [] : [`\t\telements = { ${set.services.map(nftElement).join(', ')} }`]
  return [`\tset ${nftSetName(set.family, set.withPorts)} {`, `\t\ttype ${type}`, '\t\tflags interval', ...elements, '\t}'].join('\n')
}

/** The one transaction that replaces our table whole (creating it first, so the delete cannot fail). Pure. */
export const renderNftTransaction = (table: string | undefined): string =>
  `table inet ${NFT_TABLE} {}\ndelete table inet ${NFT_TABLE}\n${table ?? ''}`
