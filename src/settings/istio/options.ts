// Istio's `istio-iptables` command line, as data: every flag of Istio's current release with its shorthand, the
// environment variables bound to it (the flag's name upper-cased with `-` as `_`, plus the extra names Istio reads
// for a few), its default and its value's kind; then the variables Istio reads without a flag, and pilot-agent's
// logging flags, which the command also takes. One table feeds the parser, the environment and `--help`.

export type FlagKind = 'string' | 'bool' | 'uint16' | 'duration' | 'int' | 'strings'

export interface IstioFlag {
  readonly long: string
  readonly short?: string
  readonly kind: FlagKind
  /** Variables that set it, in the order Istio applies them (a later one wins); a flag on the command line wins over all. */
  readonly env: readonly string[]
  readonly default: string
  readonly help: string
}

/** The environment name Istio derives from a flag's name. */
const bound = (long: string): string => long.toUpperCase().replaceAll('-', '_')

const flag = (long: string, short: string | undefined, kind: FlagKind, def: string, help: string, extraEnv: readonly string[] = []): IstioFlag => ({
  long,
  ...(short && { short }),
  kind,
  env: [bound(long), ...extraEnv],
  default: def,
  help,
})

export const ISTIO_FLAGS = {
  // The one flag Istio binds to no variable.
  proxyPort: { long: 'envoy-port', short: 'p', kind: 'string', env: [], default: '15001', help: 'the port outbound TCP is redirected to' },
  inboundCapturePort: flag(
    'inbound-capture-port',
    'z',
    'string',
    '15006',
    "the port inbound TCP (and the proxy's own connections to this pod) is redirected to",
  ),
  inboundTunnelPort: flag(
    'inbound-tunnel-port',
    'e',
    'string',
    '15008',
    "the HBONE tunnel port: inbound TCP to it is not redirected (by REDIRECT; Istio's TPROXY rules take it)",
  ),
  proxyUid: flag(
    'proxy-uid',
    'u',
    'string',
    '',
    "the proxy's UIDs, comma-separated (names from /etc/passwd too); empty: ENVOY_USER's UID, else 1337",
  ),
  proxyGid: flag('proxy-gid', 'g', 'string', '', "the proxy's GIDs, comma-separated; empty: the same as --proxy-uid"),
  interceptionMode: flag(
    'istio-inbound-interception-mode',
    'm',
    'string',
    '',
    'how inbound TCP reaches the proxy: REDIRECT (nat; also empty) or TPROXY (mangle)',
  ),
  inboundPorts: flag('istio-inbound-ports', 'b', 'string', '', 'inbound ports to redirect: * for all, a comma-separated list, or empty for none'),
  inboundExcludePorts: flag('istio-local-exclude-ports', 'd', 'string', '', 'inbound ports never redirected; only with --istio-inbound-ports=*'),
  excludeInterfaces: flag('istio-exclude-interfaces', 'c', 'string', '', 'interfaces whose traffic, in or out, is never redirected'),
  outboundIncludeCidrs: flag(
    'istio-service-cidr',
    'i',
    'string',
    '',
    'outbound destinations to redirect: * for all, comma-separated CIDRs, or empty for none',
  ),
  outboundExcludeCidrs: flag('istio-service-exclude-cidr', 'x', 'string', '', 'outbound destinations never redirected, comma-separated CIDRs'),
  outboundPorts: flag('istio-outbound-ports', 'q', 'string', '', 'outbound ports always redirected, whatever --istio-service-cidr says'),
  outboundExcludePorts: flag('istio-local-outbound-ports-exclude', 'o', 'string', '', 'outbound ports (TCP and UDP) never redirected'),
  rerouteInterfaces: flag(
    'kube-virt-interfaces',
    'k',
    'string',
    '',
    "virtual interfaces (KubeVirt) whose arriving traffic is treated as the pod's outbound",
  ),
  tproxyMark: flag('istio-inbound-tproxy-mark', 't', 'string', '1337', 'TPROXY: the mark of diverted packets'),
  tproxyRouteTable: flag('istio-inbound-tproxy-route-table', 'r', 'string', '133', 'TPROXY: the routing table of the local route for marked packets'),
  dryRun: flag('dry-run', 'n', 'bool', 'false', 'print the rules and change nothing'),
  probePort: flag('iptables-probe-port', undefined, 'uint16', '15002', "validation: the port Istio's own probe connects to"),
  probeTimeout: flag('probe-timeout', undefined, 'duration', '5s', 'validation: how long it may take'),
  skipRuleApply: flag('skip-rule-apply', undefined, 'bool', 'false', 'write no rules (with --run-validation: check the ones the CNI plugin wrote)'),
  runValidation: flag('run-validation', undefined, 'bool', 'false', 'prove with connections that capture works; exit 126 if it does not'),
  redirectDns: flag('redirect-dns', undefined, 'bool', 'false', "redirect DNS to the agent's port 15053 (the nameservers of /etc/resolv.conf)", [
    'ISTIO_META_DNS_CAPTURE',
  ]),
  dropInvalid: flag('drop-invalid', undefined, 'bool', 'false', 'drop packets conntrack finds invalid instead of letting them reset connections', [
    'INVALID_DROP',
  ]),
  dualStack: flag(
    'dual-stack',
    undefined,
    'bool',
    'false',
    'capture IPv6 whenever the pod has a global IPv6 address, not only when its first address is IPv6',
    ['ISTIO_DUAL_STACK'],
  ),
  captureAllDns: flag('capture-all-dns', undefined, 'bool', 'false', 'with --redirect-dns: every destination on port 53, not only the nameservers'),
  networkNamespace: flag('network-namespace', undefined, 'string', '', 'the network namespace (a path) to program instead of our own'),
  cniMode: flag('cni-mode', undefined, 'bool', 'false', "run as Istio's CNI plugin does (accepted; the rule lock is per namespace anyway)"),
  reconcile: flag('reconcile', undefined, 'bool', 'false', 'replace rules in the way (accepted; our apply always replaces our own rules in place)'),
  cleanupOnly: flag('cleanup-only', undefined, 'bool', 'false', 'remove the rules and write none'),
  forceApply: flag('force-apply', undefined, 'bool', 'false', 'write even when the rules seem in place (accepted; ours are compared exactly)'),
  nativeNftables: flag('native-nftables', undefined, 'bool', 'false', 'write native nftables (one inet table) instead of iptables'),
  forceIptablesBinary: flag('force-iptables-binary', undefined, 'string', '', 'the iptables variant: legacy or nft (empty: as the namespace uses)'),
} as const satisfies Record<string, IstioFlag>

export type IstioFlagKey = keyof typeof ISTIO_FLAGS

/** Variables Istio reads without a flag. */
export const ISTIO_ENV_ONLY = {
  ownerGroups: { env: 'ISTIO_OUTBOUND_OWNER_GROUPS', default: '*', help: 'groups (GIDs or names) whose outbound traffic is redirected: * for all' },
  ownerGroupsExclude: {
    env: 'ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE',
    default: '',
    help: 'with ISTIO_OUTBOUND_OWNER_GROUPS=*: groups whose outbound traffic is never redirected',
  },
  loopbackCidr: {
    env: 'ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR',
    default: '127.0.0.1/32',
    help: 'the IPv4 loopback range taken as the pod itself (a CIDR in 127.0.0.0/8, /8 to /32)',
  },
  envoyUser: { env: 'ENVOY_USER', default: 'istio-proxy', help: 'the user whose UID is the proxy UID when --proxy-uid is empty' },
} as const

/** pilot-agent's logging flags, which every command of it takes; no variable sets them. */
export const LOG_FLAGS = {
  logAsJson: { long: 'log_as_json', kind: 'bool', env: [], default: 'false', help: 'log JSON lines instead of text' },
  logOutputLevel: {
    long: 'log_output_level',
    kind: 'string',
    env: [],
    default: 'default:info',
    help: 'the least level logged, per scope: scope:level,... (levels debug, info, warn, error, fatal, none)',
  },
  logStacktraceLevel: {
    long: 'log_stacktrace_level',
    kind: 'string',
    env: [],
    default: 'default:none',
    help: 'accepted and checked; no stack traces are written',
  },
  logCaller: { long: 'log_caller', kind: 'string', env: [], default: '', help: 'accepted; no caller is logged' },
  logTarget: {
    long: 'log_target',
    kind: 'strings',
    env: [],
    default: 'stdout',
    help: 'where logs go: stdout, stderr or a file path; repeat for more',
  },
  vklog: { long: 'vklog', kind: 'int', env: [], default: '0', help: 'accepted (Kubernetes client verbosity; this command has no client)' },
} as const satisfies Record<string, IstioFlag>

export type LogFlagKey = keyof typeof LOG_FLAGS

/** Every flag the command takes, by key. */
export const ALL_ISTIO_FLAGS: Readonly<Record<IstioFlagKey | LogFlagKey, IstioFlag>> = { ...ISTIO_FLAGS, ...LOG_FLAGS }
