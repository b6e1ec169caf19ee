// The only place that names what the kernel sees of us: chain, set and table names and the comment on every rule.
// Ownership is exact: a name is ours only if it is one of these, and a rule only if its comment is one of ours to
// the letter, so another tool's `SIDECAR_OTHER` chain or `sidecar-redirect/x` look-alike is never touched.

export const INBOUND_CHAIN = 'SIDECAR_INBOUND'
export const OUTBOUND_CHAIN = 'SIDECAR_OUTBOUND'
export const DNS_CHAIN = 'SIDECAR_DNS'
export const DNS_ZONE_OUT_CHAIN = 'SIDECAR_DNS_ZONE_OUT'
/** TPROXY inbound: diverts inbound TCP to the proxy (mangle PREROUTING), and marks its transparent connections. */
export const TPROXY_CHAIN = 'SIDECAR_TPROXY'
export const TPROXY_MARK_CHAIN = 'SIDECAR_TPROXY_MARK'

// Istio's mode (`istio-iptables`) keeps Istio's chain names where one chain of Istio's is one chain here; where
// Istio writes into a built-in chain or reuses a name across tables, the name says the table (see plan/modes/istio.ts).
export const ISTIO_INBOUND_CHAIN = 'ISTIO_INBOUND'
export const ISTIO_OUTPUT_CHAIN = 'ISTIO_OUTPUT'
export const ISTIO_INBOUND_MANGLE_CHAIN = 'ISTIO_INBOUND_MANGLE'
export const ISTIO_OUTPUT_MANGLE_CHAIN = 'ISTIO_OUTPUT_MANGLE'
export const ISTIO_INBOUND_DNS_CHAIN = 'ISTIO_INBOUND_DNS'
export const ISTIO_OUTPUT_DNS_CHAIN = 'ISTIO_OUTPUT_DNS'

/** The netfilter tables a chain of ours can live in: raw runs before conntrack, mangle before nat. */
export type Table = 'raw' | 'mangle' | 'nat'
/** The order netfilter runs them in at a hook; a restore payload writes its sections in this order too. */
export const TABLES: readonly Table[] = ['raw', 'mangle', 'nat']
export type Hook = 'PREROUTING' | 'OUTPUT'
export type Protocol = 'tcp' | 'udp'

/** Where a chain of ours is hooked, and the one jump into it: its comment, and the protocol it is limited to. */
export interface ChainHome {
  readonly table: Table
  readonly hook: Hook
  readonly jump: Purpose
  /** Only packets of this protocol enter the chain; undefined: every packet does (its rules say which). */
  readonly protocol?: Protocol
}

/**
 * Every chain this version and earlier ones create, and where each is hooked: fixed per name, so the jump into a
 * chain is known to the letter whatever the settings, and a re-run or clean recognises one an earlier run left.
 * 0.1.0 is the first release, so there are no older names yet; a renamed chain stays here under its old name.
 * Within one table and hook, chains run in the order the plan lists them.
 */
export const CHAIN_HOMES = {
  [DNS_ZONE_OUT_CHAIN]: { table: 'raw', hook: 'OUTPUT', jump: 'dns-zone' },
  [ISTIO_INBOUND_DNS_CHAIN]: { table: 'raw', hook: 'PREROUTING', jump: 'istio-inbound-dns' },
  [ISTIO_OUTPUT_DNS_CHAIN]: { table: 'raw', hook: 'OUTPUT', jump: 'istio-output-dns' },
  [TPROXY_CHAIN]: { table: 'mangle', hook: 'PREROUTING', jump: 'tproxy', protocol: 'tcp' },
  [TPROXY_MARK_CHAIN]: { table: 'mangle', hook: 'OUTPUT', jump: 'tproxy-mark', protocol: 'tcp' },
  [ISTIO_INBOUND_MANGLE_CHAIN]: { table: 'mangle', hook: 'PREROUTING', jump: 'istio-inbound-mangle' },
  [ISTIO_OUTPUT_MANGLE_CHAIN]: { table: 'mangle', hook: 'OUTPUT', jump: 'istio-output-mangle', protocol: 'tcp' },
  [INBOUND_CHAIN]: { table: 'nat', hook: 'PREROUTING', jump: 'inbound', protocol: 'tcp' },
  [ISTIO_INBOUND_CHAIN]: { table: 'nat', hook: 'PREROUTING', jump: 'istio-inbound', protocol: 'tcp' },
  [DNS_CHAIN]: { table: 'nat', hook: 'OUTPUT', jump: 'dns' },
  [OUTBOUND_CHAIN]: { table: 'nat', hook: 'OUTPUT', jump: 'outbound', protocol: 'tcp' },
  [ISTIO_OUTPUT_CHAIN]: { table: 'nat', hook: 'OUTPUT', jump: 'istio-output' },
} as const satisfies Record<string, ChainHome>

export type ChainName = keyof typeof CHAIN_HOMES

export const OWNED_CHAINS: readonly string[] = Object.keys(CHAIN_HOMES)

/** Why each rule exists; `sidecar-redirect/<purpose>` becomes its comment. */
export const PURPOSES = [
  'inbound',
  'outbound',
  'dns',
  'dns-zone',
  'inbound-capture',
  'inbound-exclude-port',
  'outbound-capture',
  'loopback-source',
  'proxy-uid',
  'proxy-mark',
  'proxy-cgroup',
  'proxy-gid',
  'outbound-exclude-port',
  'outbound-exclude-cidr',
  'service-capture',
  'service-port-capture',
  'inbound-exclude-interface',
  'outbound-exclude-interface',
  'dns-capture',
  'dns-proxy-query',
  'dns-app-query',
  'tproxy',
  'tproxy-mark',
  'tproxy-loopback',
  'tproxy-established',
  'tproxy-transparent-connection',
  'tproxy-reply',
  'leave-ipv4-alone',
  'leave-ipv6-alone',
  // Istio's mode: the jumps, then its rules by what each does in Istio's layout.
  'istio-inbound',
  'istio-output',
  'istio-inbound-mangle',
  'istio-output-mangle',
  'istio-inbound-dns',
  'istio-output-dns',
  'istio-exclude-interface',
  'istio-reroute-interface',
  'istio-reroute-interface-skip',
  'istio-tunnel-port',
  'istio-inbound-exclude-port',
  'istio-inbound-capture',
  'istio-outbound-exclude-port',
  'istio-passthrough-source',
  'istio-proxy-to-self',
  'istio-app-loopback',
  'istio-proxy-uid',
  'istio-proxy-gid',
  'istio-owner-groups',
  'istio-owner-group-exclude',
  'istio-dns-capture',
  'istio-loopback-destination',
  'istio-outbound-exclude-cidr',
  'istio-outbound-port-capture',
  'istio-outbound-capture',
  'istio-drop-invalid',
  'istio-save-mark',
  'istio-marked',
  'istio-loopback',
  'istio-divert-mark',
  'istio-divert',
  'istio-proxy-to-self-mark',
  'istio-restore-mark',
  'istio-dns-proxy-query',
  'istio-dns-proxy-answer',
  'istio-dns-app-query',
  'istio-dns-upstream-answer',
] as const

export type Purpose = (typeof PURPOSES)[number]

const COMMENT_PREFIX = 'sidecar-redirect/'

export const commentFor = (purpose: Purpose): string => `${COMMENT_PREFIX}${purpose}`

const OWNED_COMMENTS = new Set<string>(PURPOSES.map(commentFor))

/** A rule line is tagged ours only if it carries one of our comments exactly, as iptables-save or nft prints it. */
export const hasOwnedComment = (line: string): boolean => {
  const comment = / (?:--)?comment "([^"]*)"/.exec(line)?.[1]
  return comment !== undefined && OWNED_COMMENTS.has(comment)
}

export const isOwnedChain = (name: string): boolean => OWNED_CHAINS.includes(name)

/** Our service sets: ipset names are global per namespace, so they are named like our chains. */
export const ipsetName = (family: 'ipv4' | 'ipv6', withPorts: boolean): string =>
  `SIDECAR_SVC${family === 'ipv4' ? 4 : 6}${withPorts ? '_PORTS' : ''}`
/** The copy a set is filled in before it is swapped in. */
export const ipsetNextName = (name: string): string => `${name}-next`
export const OWNED_IPSETS: readonly string[] = (['ipv4', 'ipv6'] as const).flatMap(f => [false, true].map(p => ipsetName(f, p)))

export const nftSetName = (family: 'ipv4' | 'ipv6', withPorts: boolean): string => `services${family === 'ipv4' ? 4 : 6}${withPorts ? '_ports' : ''}`

/**
 * iptables-nft creates the tables and built-in chains it writes into and never removes them; so init creates the
 * ones missing itself, with this comment, and clean removes such a table or chain once it holds nothing.
 */
export const CREATED_COMMENT = `${COMMENT_PREFIX}created`

export const NFT_TABLE = 'sidecar_redirect'
/** Our nft table carries this comment, so a table of someone else's that happens to have our name is not taken over. */
export const NFT_TABLE_COMMENT = `${COMMENT_PREFIX}table`

/**
 * The priority of TPROXY's `ip rule`: ahead of `main` (32766), and the one thing besides the settings' mark and table
 * that makes a rule ours. A rule at another priority, or with another mark or table, is never touched.
 */
export const TPROXY_RULE_PRIORITY = 32000
