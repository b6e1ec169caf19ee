// The one validated, typed view of what the user asked for. Everything after parsing reads only this.

export type Family = 'ipv4' | 'ipv6'
export const FAMILIES: readonly Family[] = ['ipv4', 'ipv6']

export type OutboundMethod = 'uid' | 'mark' | 'cgroup' | 'explicit'
export type BackendChoice = 'auto' | 'iptables-nft' | 'iptables-legacy' | 'nftables'
export type LogFormat = 'text' | 'json'
export type Ipv6Mode = 'auto' | 'true' | 'false'
export type VerifyMode = 'rules' | 'live'
export type DnsCapture = 'off' | 'resolv-conf' | 'all'
export type InterceptionMode = 'REDIRECT' | 'TPROXY'

export interface PortRange {
  readonly from: number
  readonly to: number
}

export interface Cidr {
  readonly family: Family
  /** Network address in the canonical text form iptables-save prints (host bits cleared). */
  readonly address: string
  readonly prefix: number
}

/** One service the explicit method captures: an address range, and a port range or every port. */
export interface Service {
  readonly cidr: Cidr
  /** undefined: every port of the address. */
  readonly ports: PortRange | undefined
}

export interface Mark {
  readonly value: number
  readonly mask: number | undefined
}

export interface Settings {
  readonly proxyPort: number
  /** Where inbound connections are redirected; undefined means proxyPort. */
  readonly inboundCapturePort: number | undefined
  readonly proxyUid: number
  readonly proxyGid: number | undefined
  readonly outboundMethod: OutboundMethod
  readonly mark: Mark
  readonly netClsId: number
  /** 'all', or the listed ports; an empty list means no inbound capture. */
  readonly inboundPorts: 'all' | readonly PortRange[]
  readonly inboundExcludePorts: readonly PortRange[]
  /** How inbound TCP reaches the proxy: nat REDIRECT, or mangle TPROXY (no NAT: the proxy sees the original destination). */
  readonly inboundInterceptionMode: InterceptionMode
  /** TPROXY: the packet mark that routes diverted packets, and the app's replies to the proxy, to the local table. */
  readonly inboundTproxyMark: number
  /** TPROXY: the routing table holding the local default route that the mark's policy rule looks up. */
  readonly inboundTproxyRouteTable: number
  readonly outboundExcludePorts: readonly PortRange[]
  readonly outboundIncludeCidrs: 'all' | readonly Cidr[]
  readonly outboundExcludeCidrs: readonly Cidr[]
  /** Interfaces whose traffic, in or out, is never captured. */
  readonly excludeInterfaces: readonly string[]
  /** Outbound, what an excluded interface exempts: the destinations of its own main-table routes, or everything. */
  readonly excludeInterfacesScope: 'routes' | 'all'
  /** Which DNS (UDP and TCP to port 53) goes to the proxy's DNS port: none, to the resolv.conf nameservers, or all. */
  readonly dnsCapture: DnsCapture
  readonly dnsPort: number
  /** The resolv.conf whose nameservers ISTIO_DNS_CAPTURE=resolv-conf captures. */
  readonly resolvConf: string
  /** Nameservers given outright (CNI mode: the runtime's dns.servers); when set, ISTIO_RESOLV_CONF is not read. */
  readonly dnsServers: readonly Cidr[]
  /** The nameserver addresses (hosts) captured: dnsServers, else read by loadSettings from resolvConf; empty unless resolv-conf. */
  readonly nameservers: readonly Cidr[]
  /** Method explicit: the services to capture (from ISTIO_SERVICES and ISTIO_SERVICES_FILE). */
  readonly services: readonly Service[]
  readonly servicesFile: string | undefined
  readonly backend: BackendChoice
  readonly ipv6: Ipv6Mode
  readonly verify: VerifyMode
  /** BPF programs on the pod's devices the whole-path check accepts unjudged: their tags, or all of them. */
  readonly acceptBpfPrograms: 'all' | readonly string[]
  readonly logFormat: LogFormat
  /** Seconds a program init starts (iptables-restore, nft, ipset...) may run before it is killed. */
  readonly execTimeout: number
  /** A misspelt ISTIO_* variable is an error (exit 2) rather than a warning. */
  readonly strictEnv: boolean
}

/** The settings that are options (env var and flag); the rest is read from files they name. */
export type OptionSettings = Omit<Settings, 'nameservers'>

/** What the proxy agent (`run`) needs beyond Settings. */
export interface AgentSettings {
  /** A user name, or a numeric UID; undefined means Settings.proxyUid. */
  readonly user: string | number | undefined
  /** The proxy's supplementary groups besides its primary GID: exactly these, never the group database's. */
  readonly groups: readonly number[]
  readonly restart: 'no' | 'on-failure'
  readonly nofile: number | undefined
  readonly netClsRoot: string
  /** The node classifier's socket; when set, the agent asks it for the net_cls group instead of joining itself. */
  readonly classifierSocket: string | undefined
  /** After SIGTERM or SIGINT, the seconds the proxy has to exit before it is killed. */
  readonly drainSeconds: number
  /** How long `ready` waits for the proxy's port to accept a connection. */
  readonly readySeconds: number
}

/** What the node-level classifier needs beyond Settings. */
export interface ClassifierSettings {
  readonly socket: string
  /** Peers with these UIDs may ask; empty means ISTIO_PROXY_UID. */
  readonly allowedUids: readonly number[]
  /** Classids that may be asked for; empty means ISTIO_NET_CLS_ID. */
  readonly allowedClassids: readonly number[]
}

/** Where the node agent serves its Prometheus metrics over HTTP. */
export interface MetricsAddress {
  /** Empty for every address. */
  readonly host: string
  readonly port: number
  readonly path: string
}

/** What `validate` needs beyond Settings to decide the pod's effective settings as the node agent did. */
export interface ValidateSettings {
  /** The pod's annotations, as a downward API volume holds them; undefined: none. */
  readonly annotationsFile: string | undefined
  /** The operator's allow-list: the sidecar-redirect.io/<name> annotations a pod may set. */
  readonly allowedAnnotations: readonly string[]
}

export interface NodeAgentSettings {
  readonly socket: string
  /** Requests (ADD, CHECK, DEL) and repairs worked on at once; undefined means twice the CPUs it may use. */
  readonly concurrency: number | undefined
  /** How long a request may take to arrive and then wait for its turn. */
  readonly deadlineSeconds: number
  /** Seconds between re-verifications of every captured pod; 0 turns them off. */
  readonly recheckSeconds: number
  /** Undefined: no metrics served. */
  readonly metrics: MetricsAddress | undefined
  /** Its records of captured pods; undefined means `state` beside the socket. */
  readonly stateDir: string | undefined
}

/** What the CNI installer (`cni-install`) needs: the host's directories and the entry it chains. */
export interface CniInstallSettings {
  /** The host's CNI config directory, as mounted in the installer's container. */
  readonly confDir: string
  /** The host's CNI bin directory, as mounted. */
  readonly binDir: string
  /** The plugin executable to copy; undefined means dist/cni/sidecar-redirect beside the running CLI. */
  readonly plugin: string | undefined
  /** The node agent's socket as the host sees it: the entry's agentSocket. */
  readonly agentSocket: string
  /** The entry's settings: ISTIO_* variables as strings, validated as the env is. */
  readonly podSettings: Readonly<Record<string, string>>
  readonly captureAll: boolean
  /** The entry's allowedAnnotations: the sidecar-redirect.io/<name> annotations a pod may set. */
  readonly allowedAnnotations: readonly string[]
  readonly excludeNamespaces: readonly string[]
  /** Seconds between checks of the config directory, besides the change notifications. */
  readonly checkSeconds: number
}

/** A Kubernetes version, as far as the injector's choices depend on it. */
export interface KubeVersion {
  readonly major: number
  readonly minor: number
}

/** A container's ResourceRequirements: requests and limits by resource name, as quantities. */
export type Resources = Readonly<Record<string, Readonly<Record<string, string>>>>

/** The proxy's startup and readiness probe: a TCP connection to its port, none, or the user's own Probe. */
export type ProxyProbe =
  | { readonly kind: 'tcp' }
  | { readonly kind: 'none' }
  | { readonly kind: 'custom'; readonly probe: Readonly<Record<string, unknown>> }

/** What `inject` and the webhook add to a pod template, beyond the capture Settings they pass on. */
export interface InjectSettings {
  /** This project's image: the init or validate container's, the classic hold's, and the default proxy's. */
  readonly image: string
  readonly pullPolicy: 'Always' | 'IfNotPresent' | 'Never'
  /** init: an init container with NET_ADMIN programs the rules; cni: the node's plugin does, the pod validates. */
  readonly mode: 'init' | 'cni'
  readonly layout: 'auto' | 'native' | 'classic'
  /** For layout auto; undefined means a supported release (native sidecars are on from 1.29). */
  readonly kubeVersion: KubeVersion | undefined
  /** undefined: this project's image, running its stand-in relay. */
  readonly proxyImage: string | undefined
  readonly proxyCommand: readonly string[] | undefined
  readonly proxyArgs: readonly string[] | undefined
  /** Whether the proxy's image holds our agent; auto: only our own image does. */
  readonly proxyAgent: 'auto' | 'true' | 'false'
  readonly proxyProbe: ProxyProbe
  readonly proxyReadOnlyRoot: boolean
  /** Our containers' resources (a ResourceRequirements); undefined for none. */
  readonly resources: Resources | undefined
  /** The proxy container's resources; undefined for none. */
  readonly proxyResources: Resources | undefined
  /** Classic layout: hold the app until the proxy accepts connections. */
  readonly hold: boolean
  /** An app container that keeps NET_RAW or has NET_ADMIN: a warning, or a refusal. */
  readonly appCapabilities: 'warn' | 'refuse'
  /** The UID and GID of our unprivileged helpers (validate, the classic hold): an identity the rules capture. */
  readonly helperUid: number
  /** Flag names of the settings a pod's annotations may set. */
  readonly annotations: readonly string[]
}

/** What the admission webhook needs beyond the injector's settings. */
export interface WebhookSettings {
  readonly port: number
  readonly certFile: string
  readonly keyFile: string
  /** The largest request body it reads. */
  readonly maxBytes: number
  /** How long one request may take to arrive and be answered. */
  readonly requestSeconds: number
  /** How often the certificate files are read for a change, besides change notifications. */
  readonly certCheckSeconds: number
}
