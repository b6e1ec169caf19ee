// One row per setting: its env var, its flag, its default and what it accepts. The CLI flags, --help and the
// table in docs/reference.md are all read from here, so a setting cannot exist in one place and not another.

import { ConfigError } from '../errors.js'
import type {
  AgentSettings,
  ClassifierSettings,
  CniInstallSettings,
  Mark,
  MetricsAddress,
  NodeAgentSettings,
  OptionSettings,
  ValidateSettings,
} from './types.js'
import { parseCidr } from './cidr.js'
import { parseServiceList, refuseOverlaps } from './services.js'
import { parseChoice, parseCidrSelection, parseCidrList, parseInteger, parseInterfaceList, parsePortList, parsePortSelection } from './values.js'

export interface OptionSpec<T> {
  readonly env: string
  readonly flag: string
  readonly default: string
  readonly help: string
  readonly parse: (text: string, where: string) => T
}

export type OptionTable<S> = { readonly [K in keyof S]: OptionSpec<S[K]> }

/**
 * Who may set one of the main settings in CNI mode, where a pod's annotations reach the root node agent.
 * `operator`: the plugin config's settings (the chart's values) only; an annotation naming it is refused, and so is
 * an allow-list naming it. For every setting that names a node path or decides how the agent runs.
 * `allow-listed`: the operator's settings, or a pod's annotation when the operator's allowedAnnotations names it.
 */
export type Trust = 'operator' | 'allow-listed'

/** A row of the main table: an option that also says who may set it (required, so a new row must decide). */
export interface PodOptionSpec<T> extends OptionSpec<T> {
  readonly trust: Trust
}

export type PodOptionTable<S> = { readonly [K in keyof S]: PodOptionSpec<S[K]> }

const UINT32 = 0xffffffff
// (uid_t)-1 means "no change" to the kernel, so it can never be a process's UID.
const ID_ACCEPTED = 'a numeric ID from 1 to 4294967294 (0 would exempt every root process from capture)'

const parseId = (text: string, where: string): number => parseInteger(text, where, 1, UINT32 - 1, ID_ACCEPTED)

const parsePath = (t: string, w: string): string => {
  if (!t.startsWith('/') || t.includes('\0')) throw new ConfigError(w, t, 'an absolute path')
  return t.replace(/(.)\/+$/, '$1')
}

const parseList = <T>(text: string, item: (part: string) => T): T[] => (text.trim() === '' ? [] : text.split(',').map(p => item(p.trim())))

const MARK_ACCEPTED = 'a non-zero 32-bit mark, or value/mask, in decimal or 0x hex, with the value inside the mask (e.g. 0x1 or 0x100/0xf00)'

const parseMark = (text: string, where: string): Mark => {
  const [valueText = '', maskText, ...rest] = text.split('/')
  if (rest.length > 0) throw new ConfigError(where, text, MARK_ACCEPTED)
  const value = parseInteger(valueText, where, 1, UINT32, MARK_ACCEPTED, text)
  const mask = maskText === undefined ? undefined : parseInteger(maskText, where, 1, UINT32, MARK_ACCEPTED, text)
  // A value with bits outside its mask can never match, which would quietly capture the proxy too.
  if (mask !== undefined && (value & ~mask) >>> 0 !== 0) throw new ConfigError(where, text, MARK_ACCEPTED)
  // A full mask is the same match as no mask, and iptables-save prints it without one.
  return { value, mask: mask === UINT32 ? undefined : mask }
}

const TAGS = 'BPF program tags as tc and ip print them (16 hex digits), comma-separated, or * for any'

const parseProgramTags = (text: string, where: string): 'all' | readonly string[] => {
  if (text.trim() === '*') return 'all'
  return parseList(text, tag => {
    if (!/^[0-9a-f]{16}$/i.test(tag)) throw new ConfigError(where, text, `${TAGS}; ${JSON.stringify(tag)} is not one`)
    return tag.toLowerCase()
  })
}

// The kernel's own routing tables: default (253), main (254) and local (255). A local default route in one of
// them would swallow every packet of the namespace, marked or not.
const RESERVED_TABLES: readonly number[] = [253, 254, 255]

export const OPTIONS: PodOptionTable<OptionSettings> = {
  proxyPort: {
    trust: 'allow-listed',
    env: 'ISTIO_PROXY_PORT',
    flag: 'proxy-port',
    default: '5001',
    help: 'the port the proxy listens on; captured TCP is redirected there (inbound too, unless ISTIO_INBOUND_CAPTURE_PORT is set)',
    parse: (t, w) => parseInteger(t, w, 1, 65535, 'a TCP port from 1 to 65535'),
  },
  proxyUid: {
    trust: 'allow-listed',
    env: 'ISTIO_PROXY_UID',
    flag: 'proxy-uid',
    default: '1337',
    help: "the proxy's UID; its traffic is not captured",
    parse: parseId,
  },
  proxyGid: {
    trust: 'allow-listed',
    env: 'ISTIO_PROXY_GID',
    flag: 'proxy-gid',
    default: '',
    help: 'if set, traffic of processes with this GID is not captured either',
    parse: (t, w) => (t.trim() === '' ? undefined : parseId(t, w)),
  },
  outboundMethod: {
    trust: 'allow-listed',
    env: 'ISTIO_OUTBOUND_METHOD',
    flag: 'outbound-method',
    default: 'uid',
    help: "how the proxy's own outbound traffic is told apart: uid, mark (SO_MARK) or cgroup (net_cls classid); or explicit: capture only ISTIO_SERVICES, the proxy exempt by UID",
    parse: (t, w) => parseChoice(t, w, ['uid', 'mark', 'cgroup', 'explicit']),
  },
  mark: {
    trust: 'allow-listed',
    env: 'ISTIO_SO_MARK',
    flag: 'so-mark',
    default: '0x1',
    help: 'with method mark: the SO_MARK the proxy sets on its sockets (value or value/mask)',
    parse: parseMark,
  },
  netClsId: {
    trust: 'allow-listed',
    env: 'ISTIO_NET_CLS_ID',
    flag: 'net-cls-id',
    default: '0x100001',
    help: "with method cgroup: the net_cls classid of the proxy's cgroup (0xAAAABBBB for major:minor)",
    parse: (t, w) => parseInteger(t, w, 1, UINT32, 'a non-zero 32-bit classid in decimal or 0x hex, e.g. 0x100001 for 10:1'),
  },
  inboundPorts: {
    trust: 'allow-listed',
    env: 'ISTIO_INBOUND_PORTS',
    flag: 'inbound-ports',
    default: '*',
    help: 'inbound ports to capture: * for all, a list like 80,8080,9000-9100, or empty for none',
    parse: parsePortSelection,
  },
  inboundExcludePorts: {
    trust: 'allow-listed',
    env: 'ISTIO_INBOUND_EXCLUDE_PORTS',
    flag: 'inbound-exclude-ports',
    default: '',
    help: 'inbound ports never captured (e.g. health checks)',
    parse: parsePortList,
  },
  inboundCapturePort: {
    trust: 'allow-listed',
    env: 'ISTIO_INBOUND_CAPTURE_PORT',
    flag: 'inbound-capture-port',
    default: '',
    help: "the port captured inbound TCP is redirected to (Istio's 15006 beside 15001); empty means ISTIO_PROXY_PORT",
    parse: (t, w) => (t.trim() === '' ? undefined : parseInteger(t, w, 1, 65535, 'a TCP port from 1 to 65535, or empty for ISTIO_PROXY_PORT')),
  },
  inboundInterceptionMode: {
    trust: 'allow-listed',
    env: 'ISTIO_INBOUND_INTERCEPTION_MODE',
    flag: 'inbound-interception-mode',
    default: 'REDIRECT',
    help: "how inbound TCP reaches the proxy: REDIRECT (nat; the proxy sees its own port) or TPROXY (mangle, no NAT: the proxy sees the original destination and may connect on from the client's address)",
    parse: (t, w) => parseChoice(t, w, ['REDIRECT', 'TPROXY']),
  },
  inboundTproxyMark: {
    trust: 'allow-listed',
    env: 'ISTIO_INBOUND_TPROXY_MARK',
    flag: 'inbound-tproxy-mark',
    default: '1337',
    help: "TPROXY: the packet mark (whole 32 bits) of diverted packets and of the proxy's transparent connections; its policy rule routes them locally",
    parse: (t, w) => parseInteger(t, w, 1, UINT32, 'a non-zero 32-bit mark in decimal or 0x hex'),
  },
  inboundTproxyRouteTable: {
    trust: 'allow-listed',
    env: 'ISTIO_INBOUND_TPROXY_ROUTE_TABLE',
    flag: 'inbound-tproxy-route-table',
    default: '133',
    help: "TPROXY: the routing table that holds the local default route (not 253, 254 or 255: the kernel's default, main and local tables)",
    parse: (t, w) => {
      const accepted = 'a routing table number from 1 to 4294967295 other than 253, 254 and 255 (default, main and local)'
      const table = parseInteger(t, w, 1, UINT32, accepted)
      if (RESERVED_TABLES.includes(table)) throw new ConfigError(w, t, accepted)
      return table
    },
  },
  outboundExcludePorts: {
    trust: 'allow-listed',
    env: 'ISTIO_OUTBOUND_EXCLUDE_PORTS',
    flag: 'outbound-exclude-ports',
    default: '',
    help: 'outbound destination ports never captured',
    parse: parsePortList,
  },
  outboundIncludeCidrs: {
    trust: 'allow-listed',
    env: 'ISTIO_OUTBOUND_INCLUDE_CIDRS',
    flag: 'outbound-include-cidrs',
    default: '*',
    help: 'outbound destinations to capture: * for all, a list of CIDRs, or empty for none',
    parse: parseCidrSelection,
  },
  outboundExcludeCidrs: {
    trust: 'allow-listed',
    env: 'ISTIO_OUTBOUND_EXCLUDE_CIDRS',
    flag: 'outbound-exclude-cidrs',
    default: '',
    help: 'outbound destinations never captured (e.g. 169.254.169.254/32)',
    parse: parseCidrList,
  },
  excludeInterfaces: {
    trust: 'allow-listed',
    env: 'ISTIO_EXCLUDE_INTERFACES',
    flag: 'exclude-interfaces',
    default: '',
    help: 'interfaces whose traffic, inbound or outbound, is never captured, comma-separated names',
    parse: parseInterfaceList,
  },
  excludeInterfacesScope: {
    // `all` lets an app that picks the interface reach anything uncaptured: the operator's choice, never a pod's.
    trust: 'operator',
    env: 'ISTIO_EXCLUDE_INTERFACES_SCOPE',
    flag: 'exclude-interfaces-scope',
    default: 'routes',
    help: 'what an excluded interface exempts outbound: routes (only destinations its own routes in the main table cover, read at init, so a socket bound to it or a policy rule through it reaches nothing else uncaptured) or all (everything that leaves by it, as Istio does)',
    parse: (t, w) => parseChoice(t, w, ['routes', 'all']),
  },
  dnsCapture: {
    trust: 'allow-listed',
    env: 'ISTIO_DNS_CAPTURE',
    flag: 'dns-capture',
    default: 'off',
    help: "UDP and TCP DNS (port 53) to the proxy's DNS port: off, resolv-conf (to the nameservers ISTIO_RESOLV_CONF lists) or all (to any address); the proxy's own queries go out",
    parse: (t, w) => parseChoice(t, w, ['off', 'resolv-conf', 'all']),
  },
  dnsPort: {
    trust: 'allow-listed',
    env: 'ISTIO_DNS_PORT',
    flag: 'dns-port',
    default: '15053',
    help: "with DNS capture: the port the proxy's DNS server listens on, UDP and TCP, on loopback (127.0.0.1 and ::1)",
    parse: (t, w) => parseInteger(t, w, 1, 65535, 'a port from 1 to 65535'),
  },
  resolvConf: {
    trust: 'operator',
    env: 'ISTIO_RESOLV_CONF',
    flag: 'resolv-conf',
    default: '/etc/resolv.conf',
    help: 'with ISTIO_DNS_CAPTURE=resolv-conf: the file whose nameserver lines are the addresses captured, read once at init',
    parse: parsePath,
  },
  dnsServers: {
    // Set by the node agent from the runtime's dns config (CNI mode), or by the operator; never by an annotation.
    trust: 'operator',
    env: 'ISTIO_DNS_SERVERS',
    flag: 'dns-servers',
    default: '',
    help: "with ISTIO_DNS_CAPTURE=resolv-conf: the nameservers to capture, comma-separated addresses, instead of reading ISTIO_RESOLV_CONF (CNI mode sets it from the runtime's dns.servers)",
    parse: (t, w) =>
      parseList(t, p => {
        const cidr = p.includes('/') ? undefined : parseCidr(p)
        if (cidr === undefined)
          throw new ConfigError(w, t, `comma-separated IPv4 or IPv6 addresses (no prefix, no zone); ${JSON.stringify(p)} is not one`)
        return cidr
      }),
  },
  services: {
    trust: 'allow-listed',
    env: 'ISTIO_SERVICES',
    flag: 'services',
    default: '',
    help: 'method explicit: the services to capture, comma-separated CIDR[:port[-port]] (IPv6 as [CIDR]:port)',
    parse: (t, w) => {
      const located = parseServiceList(t, w)
      try {
        refuseOverlaps(located)
      } catch (error) {
        // Quote the variable's whole value, as every refusal does; the accepted text names the two entries.
        if (error instanceof ConfigError) throw new ConfigError(w, t, `${error.accepted} (${JSON.stringify(error.value)} is the other)`)
        throw error
      }
      return located.map(l => l.service)
    },
  },
  servicesFile: {
    trust: 'operator',
    env: 'ISTIO_SERVICES_FILE',
    flag: 'services-file',
    default: '',
    help: 'method explicit: a file of services to capture, one CIDR[:port[-port]] per line, # comments',
    parse: t => (t.trim() === '' ? undefined : t.trim()),
  },
  backend: {
    trust: 'operator',
    env: 'ISTIO_BACKEND',
    flag: 'backend',
    default: 'auto',
    help: 'auto, iptables-nft, iptables-legacy, or nftables (our own inet table, both families in one transaction)',
    parse: (t, w) => parseChoice(t, w, ['auto', 'iptables-nft', 'iptables-legacy', 'nftables']),
  },
  ipv6: {
    trust: 'allow-listed',
    env: 'ISTIO_IPV6',
    flag: 'ipv6',
    default: 'auto',
    help: 'capture IPv6 too: auto (whenever the namespace has IPv6 on any interface), true (required) or false',
    parse: (t, w) => parseChoice(t, w, ['auto', 'true', 'false']),
  },
  verify: {
    trust: 'operator',
    env: 'ISTIO_VERIFY',
    flag: 'verify',
    default: 'live',
    help: 'after applying: rules (exact read-back) or live (read-back plus probes with real connections)',
    parse: (t, w) => parseChoice(t, w, ['rules', 'live']),
  },
  acceptBpfPrograms: {
    // Accepting what cannot be judged is the operator's call, never a pod's.
    trust: 'operator',
    env: 'ISTIO_ACCEPT_BPF_PROGRAMS',
    flag: 'accept-bpf-programs',
    default: '',
    help: "BPF programs on the pod's devices (tc filters and actions, XDP) that the whole-path check accepts though it cannot judge them: their tags as tc and ip print them (16 hex digits), comma-separated, or * for any; others are drift (exit 5)",
    parse: parseProgramTags,
  },
  logFormat: {
    trust: 'operator',
    env: 'ISTIO_LOG_FORMAT',
    flag: 'log-format',
    default: 'text',
    help: 'text, or json for one JSON object per event',
    parse: (t, w) => parseChoice(t, w, ['text', 'json']),
  },
  execTimeout: {
    trust: 'operator',
    env: 'ISTIO_EXEC_TIMEOUT',
    flag: 'exec-timeout',
    default: '30',
    help: 'seconds each program init starts (iptables-restore, nft, ipset, ...) may run; then it is killed and init exits 3',
    parse: (t, w) => parseInteger(t, w, 1, 3600, 'whole seconds from 1 to 3600'),
  },
  strictEnv: {
    trust: 'operator',
    env: 'ISTIO_STRICT_ENV',
    flag: 'strict-env',
    default: 'false',
    help: 'true: an ISTIO_* variable that is not a setting but close to one is an error (exit 2), not a warning',
    parse: (t, w) => parseChoice(t, w, ['true', 'false']) === 'true',
  },
}

/** Settings of the proxy agent (`run`) only. */
export const AGENT_OPTIONS: OptionTable<AgentSettings> = {
  user: {
    env: 'ISTIO_PROXY_USER',
    flag: 'user',
    default: '',
    help: 'run: the user the proxy runs as, a name or a numeric UID; empty means ISTIO_PROXY_UID',
    parse: (t, w) => {
      const text = t.trim()
      if (text === '') return undefined
      if (/^\d+$/.test(text)) return parseId(text, w)
      if (!/^[a-z_][a-z0-9_.-]*\$?$/i.test(text)) throw new ConfigError(w, t, `a user name or ${ID_ACCEPTED}`)
      return text
    },
  },
  groups: {
    env: 'ISTIO_PROXY_GROUPS',
    flag: 'groups',
    default: '',
    help: "run: the proxy's supplementary groups besides its primary GID, comma-separated GIDs; empty means none",
    parse: (t, w) =>
      parseList(t, p =>
        parseInteger(p, w, 1, UINT32 - 1, "comma-separated GIDs from 1 to 4294967294 (GID 0, root's group, is never given to the proxy)", t),
      ),
  },
  restart: {
    env: 'ISTIO_AGENT_RESTART',
    flag: 'restart',
    default: 'no',
    help: 'run: restart the proxy when it fails (on-failure, with backoff) or not (no)',
    parse: (t, w) => parseChoice(t, w, ['no', 'on-failure']),
  },
  nofile: {
    env: 'ISTIO_PROXY_NOFILE',
    flag: 'nofile',
    default: '',
    help: "run: raise the proxy's open-file limit (RLIMIT_NOFILE) to this before dropping privileges",
    parse: (t, w) => (t.trim() === '' ? undefined : parseInteger(t, w, 64, 1 << 30, 'a file count from 64 to 1073741824')),
  },
  netClsRoot: {
    env: 'ISTIO_NET_CLS_ROOT',
    flag: 'net-cls-root',
    default: '/sys/fs/cgroup/net_cls',
    help: 'run and classifier, cgroup method: where the net_cls hierarchy is mounted, or is mounted if absent',
    parse: (t, w) => parsePath(t, w),
  },
  classifierSocket: {
    env: 'ISTIO_CLASSIFIER_SOCKET',
    flag: 'classifier-socket',
    default: '',
    help: 'run, cgroup method: ask the node classifier on this socket for the net_cls group (no root needed)',
    parse: (t, w) => (t.trim() === '' ? undefined : parsePath(t, w)),
  },
  drainSeconds: {
    env: 'ISTIO_DRAIN_SECONDS',
    flag: 'drain-seconds',
    // Below Kubernetes' default terminationGracePeriodSeconds (30), so the agent, not the kubelet, ends a proxy
    // that will not stop, and says so.
    default: '20',
    help: 'run: after SIGTERM or SIGINT, how long to wait for the proxy to exit before killing it (SIGKILL)',
    parse: (t, w) => parseInteger(t, w, 0, 3600, 'whole seconds from 0 to 3600'),
  },
  readySeconds: {
    env: 'ISTIO_READY_SECONDS',
    flag: 'ready-seconds',
    default: '30',
    help: 'ready: how long to wait for the proxy to accept a connection on ISTIO_PROXY_PORT before giving up',
    parse: (t, w) => parseInteger(t, w, 0, 3600, 'whole seconds from 0 to 3600'),
  },
}

const DEFAULT_CLASSIFIER_SOCKET = '/run/sidecar-redirect/classifier.sock'

/** Settings of the node-level classifier (`classifier`) only. */
export const CLASSIFIER_OPTIONS: OptionTable<ClassifierSettings> = {
  socket: {
    env: 'ISTIO_CLASSIFIER_SOCKET',
    flag: 'classifier-socket',
    default: DEFAULT_CLASSIFIER_SOCKET,
    help: 'classifier: the unix socket it listens on; run, cgroup method: the socket to ask (set it to use the classifier)',
    parse: parsePath,
  },
  allowedUids: {
    env: 'ISTIO_CLASSIFIER_UIDS',
    flag: 'allowed-uids',
    default: '',
    help: 'classifier: the proxy UIDs it serves, comma-separated; empty means ISTIO_PROXY_UID',
    parse: (t, w) => parseList(t, p => parseInteger(p, w, 1, UINT32 - 1, `comma-separated UIDs: ${ID_ACCEPTED}`, t)),
  },
  allowedClassids: {
    env: 'ISTIO_CLASSIFIER_CLASSIDS',
    flag: 'allowed-classids',
    default: '',
    help: 'classifier: the net_cls classids it hands out, comma-separated; empty means ISTIO_NET_CLS_ID',
    parse: (t, w) => parseList(t, p => parseInteger(p, w, 1, UINT32, 'non-zero 32-bit classids', t)),
  },
}

/** The CNI plugin's socket: the path its config names as agentSocket by default. */
export const DEFAULT_NODE_AGENT_SOCKET = '/run/sidecar-redirect/agent.sock'

const SOCKET_HELP = "node-agent: the unix socket the CNI plugin forwards its requests to; cni-install: the same path, as the entry's agentSocket"

const METRICS_ACCEPTED = 'HOST:PORT/PATH, e.g. :15014/metrics (every address), 127.0.0.1:9464/metrics or [::1]:9464/metrics; empty for none'

const parseMetricsAddress = (text: string, where: string): MetricsAddress | undefined => {
  if (text.trim() === '') return undefined
  const found = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]*)):(\d{1,5})(\/[\x21-\x7e]*)?$/.exec(text.trim())
  if (!found) throw new ConfigError(where, text, METRICS_ACCEPTED)
  const port = parseInteger(found[3] ?? '', where, 0, 65535, METRICS_ACCEPTED, text)
  return { host: found[1] ?? found[2] ?? '', port, path: found[4] ?? '/metrics' }
}

/** Settings of the node-side CNI agent (`node-agent`) only. */
export const NODE_AGENT_OPTIONS: OptionTable<NodeAgentSettings> = {
  socket: {
    env: 'ISTIO_NODE_AGENT_SOCKET',
    flag: 'node-agent-socket',
    default: DEFAULT_NODE_AGENT_SOCKET,
    help: SOCKET_HELP,
    parse: parsePath,
  },
  concurrency: {
    env: 'ISTIO_NODE_AGENT_CONCURRENCY',
    flag: 'node-agent-concurrency',
    default: '',
    help: 'node-agent: how many requests (ADD, CHECK, DEL) and repairs it works on at once; the rest wait their turn in order. Empty means twice the CPUs it may use',
    parse: (t, w) => (t.trim() === '' ? undefined : parseInteger(t, w, 1, 1024, 'a count from 1 to 1024, or empty')),
  },
  deadlineSeconds: {
    env: 'ISTIO_NODE_AGENT_DEADLINE_SECONDS',
    flag: 'node-agent-deadline-seconds',
    default: '60',
    help: 'node-agent: how long a request may take to arrive and wait for its turn; then the connection is closed, or the plugin answers code 11 (try again later). Each tool run is bounded by ISTIO_EXEC_TIMEOUT and the live probe process by this',
    parse: (t, w) => parseInteger(t, w, 1, 3600, 'whole seconds from 1 to 3600'),
  },
  recheckSeconds: {
    env: 'ISTIO_NODE_AGENT_RECHECK_SECONDS',
    flag: 'node-agent-recheck-seconds',
    default: '30',
    help: 'node-agent: how often it verifies every pod it captured, repairing drift in place; 0 turns rechecks off',
    parse: (t, w) => parseInteger(t, w, 0, 86400, 'whole seconds from 0 (off) to 86400'),
  },
  metrics: {
    env: 'ISTIO_NODE_AGENT_METRICS',
    flag: 'node-agent-metrics',
    default: '',
    help: 'node-agent: serve Prometheus metrics over HTTP at HOST:PORT/PATH (e.g. :15014/metrics); empty serves none',
    parse: parseMetricsAddress,
  },
  stateDir: {
    env: 'ISTIO_NODE_AGENT_STATE_DIR',
    flag: 'node-agent-state-dir',
    default: '',
    help: "node-agent: where it records the pods it captured (so a restarted agent keeps them captured); empty means `state` in the socket's directory",
    parse: (t, w) => (t.trim() === '' ? undefined : parsePath(t, w)),
  },
}

// A namespace name is a DNS label (RFC 1123): what Kubernetes accepts for metadata.namespace.
export const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

const parseEnvObject = (text: string, where: string): Record<string, string> => {
  const accepted = 'a JSON object of ISTIO_* settings as strings, e.g. {"ISTIO_PROXY_PORT":"15001"}'
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new ConfigError(where, text, accepted)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(where, text, accepted)
  const envNames = new Set(Object.values(OPTIONS).map(spec => spec.env))
  for (const [name, item] of Object.entries(value)) {
    if (typeof item !== 'string' || !envNames.has(name))
      throw new ConfigError(`${where}.${name}`, JSON.stringify(item), `a string, for a variable of the settings table`)
  }
  return value as Record<string, string>
}

/** The capture annotation's name in an allow-list: `capture: disabled` under captureAll. */
export const CAPTURE_ANNOTATION_NAME = 'capture'

/** What an allow-list of annotations may name: capture, and every setting the table lets a pod set. */
export const allowableAnnotations = (): string[] => [
  CAPTURE_ANNOTATION_NAME,
  ...Object.values(OPTIONS)
    .filter(spec => spec.trust === 'allow-listed')
    .map(spec => spec.flag),
]

const parseAllowedAnnotations = (t: string, w: string): string[] =>
  parseList(t, name => {
    if (allowableAnnotations().includes(name)) return name
    const spec = Object.values(OPTIONS).find(s => s.flag === name)
    throw new ConfigError(
      w,
      t,
      spec
        ? `names of settings a pod may be let set (${name} is not one: only the operator sets ${spec.env}, which names a node path or decides how the node agent runs)`
        : `comma-separated names from: ${allowableAnnotations().join(', ')}`,
    )
  })

const ALLOWED_ANNOTATIONS: OptionSpec<string[]> = {
  env: 'ISTIO_CNI_ALLOWED_ANNOTATIONS',
  flag: 'cni-allowed-annotations',
  default: '',
  help: "cni-install: the entry's allowedAnnotations; validate: the same list. The sidecar-redirect.io/<name> annotations a pod may set, comma-separated names (empty: none)",
  parse: parseAllowedAnnotations,
}

/** Settings of `validate` only: what it needs to decide the pod's settings as the node agent did. */
export const VALIDATE_OPTIONS: OptionTable<ValidateSettings> = {
  annotationsFile: {
    env: 'ISTIO_POD_ANNOTATIONS_FILE',
    flag: 'pod-annotations-file',
    default: '',
    help: "validate: the pod's annotations as a downward API volume holds them; empty: none, so validate checks the operator's settings alone",
    parse: (t, w) => (t.trim() === '' ? undefined : parsePath(t, w)),
  },
  allowedAnnotations: ALLOWED_ANNOTATIONS,
}

/** Settings of the CNI installer (`cni-install`) only. */
export const CNI_INSTALL_OPTIONS: OptionTable<CniInstallSettings> = {
  confDir: {
    env: 'ISTIO_CNI_CONF_DIR',
    flag: 'cni-conf-dir',
    default: '/host/etc/cni/net.d',
    help: "cni-install: the host's CNI config directory (mounted); our entry goes last in its primary file",
    parse: parsePath,
  },
  binDir: {
    env: 'ISTIO_CNI_BIN_DIR',
    flag: 'cni-bin-dir',
    default: '/host/opt/cni/bin',
    help: "cni-install: the host's CNI bin directory (mounted); the plugin is copied there",
    parse: parsePath,
  },
  plugin: {
    env: 'ISTIO_CNI_PLUGIN',
    flag: 'cni-plugin',
    default: '',
    help: 'cni-install: the plugin executable to copy; empty means dist/cni/sidecar-redirect beside the CLI',
    parse: (t, w) => (t.trim() === '' ? undefined : parsePath(t, w)),
  },
  agentSocket: {
    env: 'ISTIO_NODE_AGENT_SOCKET',
    flag: 'node-agent-socket',
    default: DEFAULT_NODE_AGENT_SOCKET,
    help: SOCKET_HELP,
    parse: parsePath,
  },
  podSettings: {
    env: 'ISTIO_CNI_SETTINGS',
    flag: 'cni-settings',
    default: '{}',
    help: "cni-install: the entry's settings, a JSON object of ISTIO_* variables as strings, validated as the env is",
    parse: parseEnvObject,
  },
  captureAll: {
    env: 'ISTIO_CNI_CAPTURE_ALL',
    flag: 'cni-capture-all',
    default: 'false',
    help: "cni-install: the entry's captureAll: capture pods without the sidecar-redirect.io/capture annotation",
    parse: (t, w) => parseChoice(t, w, ['true', 'false']) === 'true',
  },
  allowedAnnotations: ALLOWED_ANNOTATIONS,
  excludeNamespaces: {
    env: 'ISTIO_CNI_EXCLUDE_NAMESPACES',
    flag: 'cni-exclude-namespaces',
    default: 'kube-system',
    help: "cni-install: the entry's excludeNamespaces, comma-separated: pods there are never captured",
    parse: (t, w) =>
      parseList(t, p => {
        if (!NAMESPACE.test(p)) throw new ConfigError(w, t, 'comma-separated namespace names (lower-case DNS labels)')
        return p
      }),
  },
  checkSeconds: {
    env: 'ISTIO_CNI_CHECK_SECONDS',
    flag: 'cni-check-seconds',
    default: '10',
    help: 'cni-install: how often it checks the config directory besides change notifications (a rewrite it missed is re-chained then)',
    parse: (t, w) => parseInteger(t, w, 1, 3600, 'whole seconds from 1 to 3600'),
  },
}

export const OPTION_KEYS = Object.keys(OPTIONS) as (keyof OptionSettings)[]
