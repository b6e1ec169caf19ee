// Where every connection must land under Istio's rules, per configuration of Istio's own golden tests (its
// istio-iptables capture tests and its CNI plugin's), stated here as expectations and checked with real traffic.
//
// How the expectations are derived: from Istio's rules, read in order as netfilter runs them (nat OUTPUT's
// ISTIO_OUTPUT for the pod's own connections, nat or mangle PREROUTING for arriving ones), for each cell's
// identity, destination and port. BASE is Istio's configuration with nothing captured but the proxy's own traffic
// (`-b ""`, `-i ""`, UID and GID 1337); each configuration lists only the cells its flags change, with the rule
// that changes them. IPv6 cells follow the same table when IPv6 is enabled (`--dual-stack`, as Istio's tests set
// EnableIPv6); when it is not, istio-iptables writes no IPv6 rule (every IPv6 cell lands on its destination), and
// Istio's native nftables mode still applies its rules that name no address to IPv6 (`nft6`).
import { EXCLUDED, INCLUDED, NET10, ADDR, type Family, type Host } from './istio-pod.js'

/** Where a connection lands: the outbound port (15001), the inbound port (15006), the DNS port (15053), or the listener it was addressed to. */
export type Landing = 'proxy' | 'inbound' | 'dns' | 'direct'

export type Who = 'app' | 'proxy' | 'gid' | 'proxy2' | 'group'

export interface Cell {
  readonly key: string
  readonly from: Host
  readonly who?: Who
  readonly to: string
  readonly port: number
  readonly bind?: string
  /** The label of the listener it reaches when nothing captures it. */
  readonly label: string
}

type Overrides = Readonly<Record<string, Landing>>

export interface IstioCase {
  readonly name: string
  /** Where the configuration comes from: Istio's capture tests, its CNI plugin's, or ours. */
  readonly source: 'istio-iptables' | 'istio-cni' | 'extra'
  readonly args: readonly string[]
  readonly env?: Readonly<Record<string, string>>
  readonly resolvConf?: string
  /** IPv6 is enabled (Istio's EnableIPv6: --dual-stack here, the pod's first address being IPv4). */
  readonly dual: boolean
  readonly uids: readonly number[]
  readonly gids: readonly number[]
  /** An owner group whose member is the `group` identity. */
  readonly group?: number
  readonly both?: Overrides
  readonly v4?: Overrides
  readonly v6?: Overrides
  /** Native nftables with IPv6 not enabled: the IPv6 cells its address-less rules capture. */
  readonly nft6?: Overrides
  /** IPv6 nameserver cells apply (the configuration's resolv.conf has one). */
  readonly nameserver6?: string
}

const APP = { uid: 1000, gid: 1000 }
export const APP_ID = APP

/** The identities of a case: the app, the proxy (first UID and GID), a GID-only member, a second proxy UID, an owner-group member. */
export const identity = (c: IstioCase, who: Who): { uid: number; gid: number } | undefined => {
  switch (who) {
    case 'app':
      return APP
    case 'proxy':
      return { uid: c.uids[0]!, gid: c.gids[0]! }
    case 'gid':
      return { uid: APP.uid, gid: c.gids[0]! }
    case 'proxy2':
      return c.uids[1] === undefined ? undefined : { uid: c.uids[1], gid: APP.gid }
    case 'group':
      return c.group === undefined ? undefined : { uid: APP.uid, gid: c.group }
  }
}

const L = { ipv4: '127.0.0.1', ipv6: '::1' } as const
const PASSTHROUGH = { ipv4: '127.0.0.6', ipv6: '::6' } as const

/** The cells of one family, for a case (cells that cannot apply are left out). */
export const cellsFor = (c: IstioCase, f: Family): Cell[] => {
  const P = ADDR.pod[f]
  const R = ADDR.remote[f]
  const v4 = f === 'ipv4'
  const cells: (Cell | false)[] = [
    ...[9090, 31000, 15020, 5555, 53].map(port => ({
      key: `app → remote:${port}`,
      from: 'pod' as const,
      who: 'app' as const,
      to: R,
      port,
      label: `remote-${port}`,
    })),
    v4 && { key: 'app → excluded:9090', from: 'pod', who: 'app', to: EXCLUDED.host, port: 9090, label: 'remote-9090' },
    v4 && { key: 'app → included:9090', from: 'pod', who: 'app', to: INCLUDED.host, port: 9090, label: 'remote-9090' },
    v4 && { key: 'app → net10:9090', from: 'pod', who: 'app', to: NET10.host, port: 9090, label: 'remote-9090' },
    v4
      ? { key: 'app → nameserver:53', from: 'pod', who: 'app', to: '127.0.0.53', port: 53, label: 'app-53' }
      : c.nameserver6 !== undefined && { key: 'app → nameserver:53', from: 'pod', who: 'app', to: c.nameserver6, port: 53, label: 'app-53' },
    { key: 'app → pod:8080', from: 'pod', who: 'app', to: P, port: 8080, label: 'app-8080' },
    { key: 'app → loopback:8080', from: 'pod', who: 'app', to: L[f], port: 8080, label: 'app-8080' },
    v4 && { key: 'app → 127.1.2.3:8080', from: 'pod', who: 'app', to: '127.1.2.3', port: 8080, label: 'app-8080' },
    { key: 'app → side3:9090', from: 'pod', who: 'app', to: ADDR.side3[f], port: 9090, label: 'side3-9090' },
    { key: 'proxy → remote:9090', from: 'pod', who: 'proxy', to: R, port: 9090, label: 'remote-9090' },
    { key: 'proxy → pod:8080', from: 'pod', who: 'proxy', to: P, port: 8080, label: 'app-8080' },
    { key: 'proxy → pod:15008', from: 'pod', who: 'proxy', to: P, port: 15008, label: 'tunnel' },
    { key: 'proxy → loopback:8080', from: 'pod', who: 'proxy', to: L[f], port: 8080, label: 'app-8080' },
    // ::6 is on lo only once IPv6 is captured (the proxy's passthrough source).
    // From loopback, as Istio's validation dials it: unbound, the source would be ::6 itself (a local address's own).
    (v4 || c.dual) && { key: 'proxy → passthrough:8080', from: 'pod', who: 'proxy', to: PASSTHROUGH[f], port: 8080, bind: L[f], label: 'app-8080' },
    (v4 || c.dual) && {
      key: 'proxy from passthrough → pod:8080',
      from: 'pod',
      who: 'proxy',
      to: P,
      port: 8080,
      bind: PASSTHROUGH[f],
      label: 'app-8080',
    },
    { key: 'gid → remote:9090', from: 'pod', who: 'gid', to: R, port: 9090, label: 'remote-9090' },
    { key: 'gid → pod:8080', from: 'pod', who: 'gid', to: P, port: 8080, label: 'app-8080' },
    c.uids.length > 1 && { key: 'proxy2 → remote:9090', from: 'pod', who: 'proxy2', to: R, port: 9090, label: 'remote-9090' },
    c.uids.length > 1 && { key: 'proxy2 → pod:8080', from: 'pod', who: 'proxy2', to: P, port: 8080, label: 'app-8080' },
    c.group !== undefined && { key: 'group → remote:9090', from: 'pod', who: 'group', to: R, port: 9090, label: 'remote-9090' },
    ...[8080, 4000, 6000, 15008, 15020, 15090, 31000, 1111, 3333].map(port => ({
      key: `remote → pod:${port}`,
      from: 'remote' as const,
      to: P,
      port,
      label: port === 15008 ? 'tunnel' : `app-${port}`,
    })),
    { key: 'side1 → pod:8080', from: 'side1', to: ADDR.podSide1[f], port: 8080, label: 'app-8080' },
    { key: 'side2 → pod:4000', from: 'side2', to: ADDR.podSide2[f], port: 4000, label: 'app-4000' },
    { key: 'side3 → pod:8080', from: 'side3', to: ADDR.podSide3[f], port: 8080, label: 'app-8080' },
    { key: 'side1 → remote:9090', from: 'side1', to: R, port: 9090, label: 'remote-9090' },
    { key: 'side2 → remote:9090', from: 'side2', to: R, port: 9090, label: 'remote-9090' },
    v4 && { key: 'side1 → net10:9090', from: 'side1', to: NET10.host, port: 9090, label: 'remote-9090' },
  ]
  return cells.filter((cell): cell is Cell => cell !== false && (cell.who === undefined || identity(c, cell.who) !== undefined))
}

/**
 * BASE: nothing captured but the proxy's own connections to its pod. The proxy UID's connection to its own pod
 * address is redirected to the inbound port (`-o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner
 * 1337 -j ISTIO_IN_REDIRECT`), as is one to 127.0.0.6 (Istio's own validation path); to the tunnel port, from the
 * passthrough source (`-o lo -s 127.0.0.6/32 -j RETURN`) or to loopback it is not. Every other identity's
 * connection over lo returns first (`-o lo -m owner ! --uid-owner 1337 -j RETURN`), the GID-only one too: the
 * GID's own redirect comes after it. Every other cell lands on its destination.
 */
const BASE: Overrides = { 'proxy → pod:8080': 'inbound', 'proxy → passthrough:8080': 'inbound' }

/** expected: where a cell lands under a case, on a flavour (iptables, or native nftables). */
export const expected = (c: IstioCase, f: Family, flavour: 'iptables' | 'nftables', key: string): Landing => {
  if (f === 'ipv6' && !c.dual) return flavour === 'nftables' ? (c.nft6?.[key] ?? 'direct') : 'direct'
  return (f === 'ipv4' ? c.v4?.[key] : c.v6?.[key]) ?? c.both?.[key] ?? BASE[key] ?? 'direct'
}

const BASE_ARGS = ['-p', '15001', '-z', '15006', '-e', '15008', '-u', '1337', '-g', '1337', '-t', '1337', '-r', '133']
const RESOLV_127053 = 'nameserver 127.0.0.53\n'
const NO_NAMESERVER = 'search example.test\n'
/** /etc/group in the pod: Istio's tests name groups `java` and `ftp`. */
export const GROUP_FILE = 'root:x:0:\njava:x:3001:\nftp:x:3002:\n'

const fill = (keys: readonly string[], landing: Landing): Overrides => Object.fromEntries(keys.map(k => [k, landing]))
const INBOUND_PORTS = [8080, 4000, 6000, 15008, 15020, 15090, 31000, 1111, 3333]
const remoteTo = (ports: readonly number[]): string[] => ports.map(p => `remote → pod:${p}`)
const OUTBOUND_ALL = ['app → remote:9090', 'app → remote:31000', 'app → remote:15020', 'app → remote:5555', 'app → remote:53']
const OUTBOUND_V4_RANGES = ['app → excluded:9090', 'app → included:9090', 'app → net10:9090']
const SIDES_IN = ['side1 → pod:8080', 'side2 → pod:4000', 'side3 → pod:8080']
const VM = ['side1 → remote:9090', 'side2 → remote:9090', 'side1 → net10:9090']

/**
 * Istio's CNI plugin's default pod: every inbound port but 15020, 15021 and 15090 (and the tunnel port, by its own
 * rule), every outbound address but port 15020 (`-p tcp --dport 15020 -j RETURN`, UDP too). With `-b *`, nat
 * PREROUTING's capture also takes connections the pod forwards (the side hosts' to the remote).
 */
const CNI_BASIC: Overrides = {
  ...fill(
    OUTBOUND_ALL.filter(k => k !== 'app → remote:15020'),
    'proxy',
  ),
  ...fill(['app → side3:9090'], 'proxy'),
  ...fill(remoteTo(INBOUND_PORTS.filter(p => ![15008, 15020, 15090].includes(p))), 'inbound'),
  ...fill(SIDES_IN, 'inbound'),
  ...fill(VM, 'inbound'),
}
const CNI_BASIC_V4: Overrides = fill(OUTBOUND_V4_RANGES, 'proxy')
const CNI_ARGS = ['-b', '*', '-d', '15020,15021,15090', '-i', '*', '-o', '15020']
/** TPROXY (mangle) instead: the tunnel port is captured too (Istio's mangle chain has no rule for it), and so are the proxy's and the GID's connections to the pod that mangle OUTPUT marks 1338. */
const CNI_TPROXY: Overrides = {
  ...CNI_BASIC,
  'remote → pod:15008': 'inbound',
  'proxy → pod:15008': 'inbound',
  'gid → pod:8080': 'inbound',
}
const CNI_NFT6: Overrides = { ...CNI_BASIC }
/** TPROXY with IPv6 not enabled: its nftables mode writes no IPv6 TPROXY, so IPv6 arrives uncaptured; outbound is nat's. */
const CNI_TPROXY_NFT6: Overrides = {
  ...fill(
    OUTBOUND_ALL.filter(k => k !== 'app → remote:15020'),
    'proxy',
  ),
  'app → side3:9090': 'proxy',
}

export const CASES: readonly IstioCase[] = [
  // ---- Istio's istio-iptables capture tests (tools/istio-iptables/pkg/capture/run_test.go) ----
  { name: 'ipv6-empty-inbound-ports', source: 'istio-iptables', args: ['-b', '', '--dual-stack'], dual: true, uids: [1337], gids: [1337] },
  {
    name: 'ip-range',
    source: 'istio-iptables',
    args: ['-x', EXCLUDED.cidr, '-i', INCLUDED.cidr, '--redirect-dns', '-u', '3,4', '-g', '1,2'],
    resolvConf: RESOLV_127053,
    dual: false,
    uids: [3, 4],
    gids: [1, 2],
    // `-d 9.9.0.0/16 -j ISTIO_REDIRECT` (here 198.19.9.0/24); the nameserver's TCP to the agent's DNS port.
    v4: { 'app → included:9090': 'proxy', 'app → nameserver:53': 'dns' },
  },
  {
    name: 'tproxy',
    source: 'istio-iptables',
    args: ['-m', 'TPROXY', '-b', '*', '-x', EXCLUDED.cidr, '-i', INCLUDED.cidr, '--redirect-dns', '-c', 'not-istio-nic', '--dual-stack'],
    resolvConf: RESOLV_127053,
    dual: true,
    uids: [1337],
    gids: [1337],
    // mangle PREROUTING's TPROXY takes every arriving TCP (the tunnel port has no rule there) but not-istio-nic's,
    // forwarded connections included; mangle OUTPUT marks the proxy's and the GID's connections to the pod 1338,
    // so they are TPROXYed on lo too (the proxy's own to port 8080 is nat-redirected first, to 127.0.0.1).
    both: {
      ...fill(remoteTo(INBOUND_PORTS), 'inbound'),
      'side1 → pod:8080': 'inbound',
      'side2 → pod:4000': 'inbound',
      ...fill(['side1 → remote:9090', 'side2 → remote:9090', 'side1 → net10:9090'], 'inbound'),
      'proxy → pod:15008': 'inbound',
      'gid → pod:8080': 'inbound',
    },
    v4: { 'app → included:9090': 'proxy', 'app → nameserver:53': 'dns' },
  },
  {
    name: 'ipv6-inbound-ports',
    source: 'istio-iptables',
    args: ['-b', '4000,5000', '--dual-stack'],
    dual: true,
    uids: [1337],
    gids: [1337],
    both: { 'remote → pod:4000': 'inbound', 'side2 → pod:4000': 'inbound' },
  },
  {
    name: 'ipv6-virt-interfaces',
    source: 'istio-iptables',
    args: ['-b', '4000,5000', '-k', 'eth0,eth1', '--dual-stack'],
    dual: true,
    uids: [1337],
    gids: [1337],
    // `-I PREROUTING 1 -i eth0 -j RETURN` comes before the inbound capture: eth0 is the pod's main interface.
    both: { 'side2 → pod:4000': 'inbound' },
  },
  {
    name: 'ipv6-ipnets',
    source: 'istio-iptables',
    args: ['-b', '4000,5000', '-d', '6000,7000,', '-k', 'eth0,eth1', '-x', '2001:db8::/32', '-i', '2001:db8::/32', '--dual-stack'],
    dual: true,
    uids: [1337],
    gids: [1337],
    v4: { 'side2 → pod:4000': 'inbound' },
    // The IPv6 reroute rules (`-i eth0 -d 2001:db8::/32 -j ISTIO_REDIRECT`, eth1 too) go first in PREROUTING: what
    // arrives on eth0 or eth1 for that range goes to the outbound port, the pod's own address and the tunnel port
    // included; outbound, the exclusion of the same range returns first.
    v6: {
      ...fill(remoteTo(INBOUND_PORTS), 'proxy'),
      'side1 → pod:8080': 'proxy',
      'side1 → remote:9090': 'proxy',
      'side2 → pod:4000': 'inbound',
    },
  },
  {
    name: 'ipv6-uid-gid',
    source: 'istio-iptables',
    args: [
      '-b',
      '4000,5000',
      '-d',
      '6000,7000',
      '-k',
      'eth0,eth1',
      '-u',
      '3,4',
      '-g',
      '1,2',
      '-x',
      '2001:db8::/32',
      '-i',
      '2001:db8::/32',
      '--dual-stack',
    ],
    dual: true,
    uids: [3, 4],
    gids: [1, 2],
    // As ipv6-ipnets. The second UID's connection to the pod is returned by the first UID's lo rule.
    v4: { 'side2 → pod:4000': 'inbound' },
    v6: {
      ...fill(remoteTo(INBOUND_PORTS), 'proxy'),
      'side1 → pod:8080': 'proxy',
      'side1 → remote:9090': 'proxy',
      'side2 → pod:4000': 'inbound',
    },
  },
  {
    name: 'ipv6-outbound-ports',
    source: 'istio-iptables',
    args: ['-b', '', '-q', '32000,31000', '--dual-stack'],
    dual: true,
    uids: [1337],
    gids: [1337],
    // `-p tcp --dport 31000 -j ISTIO_REDIRECT`, whatever -i says.
    both: { 'app → remote:31000': 'proxy' },
  },
  { name: 'empty', source: 'istio-iptables', args: [], dual: false, uids: [1337], gids: [1337] },
  {
    name: 'kube-virt-interfaces',
    source: 'istio-iptables',
    args: ['-k', 'eth1,eth2', '-i', '*'],
    dual: false,
    uids: [1337],
    gids: [1337],
    // Every outbound TCP but the proxy's, the GID's and over lo; what arrives on eth1 or eth2 goes to the outbound
    // port (`-I PREROUTING 1 -i eth1 -j ISTIO_REDIRECT`), addressed to the pod or not.
    v4: {
      ...fill([...OUTBOUND_ALL, ...OUTBOUND_V4_RANGES, 'app → side3:9090'], 'proxy'),
      ...fill(['side1 → pod:8080', 'side2 → pod:4000', ...VM], 'proxy'),
    },
    // Native nftables: the jump to its redirect chain and the reroute rules name no address.
    nft6: { ...fill([...OUTBOUND_ALL, 'app → side3:9090'], 'proxy'), ...fill(['side1 → pod:8080', 'side2 → pod:4000', ...VM], 'proxy') },
  },
  {
    name: 'ipnets',
    source: 'istio-iptables',
    args: ['-i', NET10.cidr],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { 'app → net10:9090': 'proxy' },
  },
  {
    name: 'ipnets-with-kube-virt-interfaces',
    source: 'istio-iptables',
    args: ['-k', 'eth1,eth2', '-i', NET10.cidr],
    dual: false,
    uids: [1337],
    gids: [1337],
    // The reroute rules carry the range (`-i eth1 -d 10.0.0.0/8 -j ISTIO_REDIRECT`); the rest of eth1 returns.
    v4: { 'app → net10:9090': 'proxy', 'side1 → net10:9090': 'proxy' },
  },
  {
    name: 'inbound-ports-include',
    source: 'istio-iptables',
    args: ['-b', '32000,31000'],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { 'remote → pod:31000': 'inbound' },
    nft6: { 'remote → pod:31000': 'inbound' },
  },
  {
    name: 'inbound-ports-wildcard',
    source: 'istio-iptables',
    args: ['-b', '*'],
    dual: false,
    uids: [1337],
    gids: [1337],
    // Everything arriving but the tunnel port (`-p tcp --dport 15008 -j RETURN`), forwarded connections included.
    v4: { ...fill(remoteTo(INBOUND_PORTS.filter(p => p !== 15008)), 'inbound'), ...fill([...SIDES_IN, ...VM], 'inbound') },
    nft6: { ...fill(remoteTo(INBOUND_PORTS.filter(p => p !== 15008)), 'inbound'), ...fill([...SIDES_IN, ...VM], 'inbound') },
  },
  {
    name: 'inbound-ports-tproxy',
    source: 'istio-iptables',
    args: ['-m', 'TPROXY', '-b', '32000,31000'],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { 'remote → pod:31000': 'inbound' },
  },
  {
    name: 'inbound-ports-wildcard-tproxy',
    source: 'istio-iptables',
    args: ['-m', 'TPROXY', '-b', '*'],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: {
      ...fill(remoteTo(INBOUND_PORTS), 'inbound'),
      ...fill([...SIDES_IN, ...VM], 'inbound'),
      'proxy → pod:15008': 'inbound',
      'gid → pod:8080': 'inbound',
    },
  },
  {
    name: 'dns-uid-gid',
    source: 'istio-iptables',
    args: ['--redirect-dns', '-u', '3,4', '-g', '1,2', '--dual-stack'],
    resolvConf: 'nameserver 127.0.0.53\nnameserver ::127.0.0.53\n',
    nameserver6: '::127.0.0.53',
    dual: true,
    uids: [3, 4],
    gids: [1, 2],
    // `-p tcp --dport 53 -d 127.0.0.53/32 -j REDIRECT --to-ports 15053`, and the IPv6 nameserver's twin.
    both: { 'app → nameserver:53': 'dns' },
  },
  {
    name: 'ipv6-dns-uid-gid',
    source: 'istio-iptables',
    // DNS redirection with no nameserver and not every address: Istio turns DNS capture off (with a warning).
    args: ['--redirect-dns', '-u', '3,4', '-g', '1,2', '--dual-stack'],
    resolvConf: NO_NAMESERVER,
    dual: true,
    uids: [3, 4],
    gids: [1, 2],
  },
  {
    name: 'outbound-owner-groups',
    source: 'istio-iptables',
    args: [],
    env: { ISTIO_OUTBOUND_OWNER_GROUPS: 'java,202' },
    dual: false,
    uids: [1337],
    gids: [1337],
    group: 3001,
  },
  {
    name: 'outbound-owner-groups-exclude',
    source: 'istio-iptables',
    args: [],
    env: { ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: '888,ftp' },
    dual: false,
    uids: [1337],
    gids: [1337],
    group: 888,
  },
  {
    name: 'ipv6-dns-outbound-owner-groups',
    source: 'istio-iptables',
    args: ['--redirect-dns', '--dual-stack'],
    resolvConf: NO_NAMESERVER,
    env: { ISTIO_OUTBOUND_OWNER_GROUPS: 'java,202' },
    dual: true,
    uids: [1337],
    gids: [1337],
    group: 202,
  },
  {
    name: 'ipv6-dns-outbound-owner-groups-exclude',
    source: 'istio-iptables',
    args: ['--redirect-dns', '--dual-stack'],
    resolvConf: NO_NAMESERVER,
    env: { ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: '888,ftp' },
    dual: true,
    uids: [1337],
    gids: [1337],
    group: 3002,
  },
  {
    name: 'outbound-ports-include',
    source: 'istio-iptables',
    args: ['-q', '32000,31000'],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { 'app → remote:31000': 'proxy' },
    nft6: { 'app → remote:31000': 'proxy' },
  },
  {
    name: 'loopback-outbound-iprange',
    source: 'istio-iptables',
    args: ['-i', '127.1.2.3/32', '--redirect-dns', '-u', '3,4', '-g', '1,2'],
    resolvConf: RESOLV_127053,
    dual: false,
    uids: [3, 4],
    gids: [1, 2],
    // A loopback include leaves out the lo RETURNs of other identities, so the second UID's and the GID's own
    // redirects to the inbound port are reached.
    v4: {
      'app → 127.1.2.3:8080': 'proxy',
      'app → nameserver:53': 'dns',
      'gid → pod:8080': 'inbound',
      'proxy2 → pod:8080': 'inbound',
    },
  },
  { name: 'basic-exclude-nic', source: 'istio-iptables', args: ['-c', 'not-istio-nic'], dual: false, uids: [1337], gids: [1337] },
  { name: 'drop-invalid', source: 'istio-iptables', args: ['--drop-invalid'], dual: false, uids: [1337], gids: [1337] },
  {
    name: 'host-ipv4-loopback-cidr',
    source: 'istio-iptables',
    args: [],
    env: { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '127.0.0.1/8' },
    dual: false,
    uids: [1337],
    gids: [1337],
    // `! -d 127.0.0.0/8`: the proxy's connection to 127.0.0.6 is not redirected any more.
    v4: { 'proxy → passthrough:8080': 'direct' },
  },
  // ---- Istio's CNI plugin (cni/pkg/plugin/plugin_dryrun_test.go): the flags it derives from each pod ----
  {
    name: 'cni-basic',
    source: 'istio-cni',
    args: CNI_ARGS,
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { ...CNI_BASIC, ...CNI_BASIC_V4 },
    nft6: CNI_NFT6,
  },
  {
    name: 'cni-include-exclude-ip',
    source: 'istio-cni',
    args: ['-b', '*', '-d', '15020,15021,15090', '-i', '127.0.0.0/8', '-x', NET10.cidr, '-o', '15020'],
    dual: false,
    uids: [1337],
    gids: [1337],
    // Only 127.0.0.0/8 outbound (but 127.0.0.1 itself); a loopback include leaves out the lo RETURNs, so the
    // GID's redirect to the inbound port is reached.
    v4: {
      ...fill(remoteTo(INBOUND_PORTS.filter(p => ![15008, 15020, 15090].includes(p))), 'inbound'),
      ...fill([...SIDES_IN, ...VM], 'inbound'),
      'app → 127.1.2.3:8080': 'proxy',
      'app → nameserver:53': 'proxy',
      'gid → pod:8080': 'inbound',
    },
    nft6: { ...fill(remoteTo(INBOUND_PORTS.filter(p => ![15008, 15020, 15090].includes(p))), 'inbound'), ...fill([...SIDES_IN, ...VM], 'inbound') },
  },
  {
    name: 'cni-include-exclude-ports',
    source: 'istio-cni',
    args: ['-b', '1111,2222', '-d', '3333,4444,15020,15021,15090', '-i', '*', '-o', '5555,6666'],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: {
      ...fill([...OUTBOUND_ALL.filter(k => k !== 'app → remote:5555'), ...OUTBOUND_V4_RANGES, 'app → side3:9090'], 'proxy'),
      'remote → pod:1111': 'inbound',
    },
    nft6: { ...fill([...OUTBOUND_ALL.filter(k => k !== 'app → remote:5555'), 'app → side3:9090'], 'proxy'), 'remote → pod:1111': 'inbound' },
  },
  {
    name: 'cni-tproxy',
    source: 'istio-cni',
    args: ['-m', 'TPROXY', ...CNI_ARGS],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { ...CNI_TPROXY, ...CNI_BASIC_V4 },
    nft6: CNI_TPROXY_NFT6,
  },
  {
    name: 'cni-dns',
    source: 'istio-cni',
    // The plugin turns on both DNS flags from the proxy's ISTIO_META_DNS_CAPTURE: TCP to port 53 of any address.
    args: [...CNI_ARGS, '--redirect-dns', '--capture-all-dns'],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { ...CNI_BASIC, ...CNI_BASIC_V4, 'app → remote:53': 'dns', 'app → nameserver:53': 'dns' },
    nft6: { ...CNI_NFT6, 'app → remote:53': 'dns' },
  },
  {
    name: 'cni-invalid-drop',
    source: 'istio-cni',
    args: [...CNI_ARGS, '--drop-invalid'],
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { ...CNI_BASIC, ...CNI_BASIC_V4 },
    nft6: CNI_NFT6,
  },
  {
    name: 'cni-custom-uid',
    source: 'istio-cni',
    args: [...CNI_ARGS, '-u', '1000670000', '-g', '1000670001'],
    dual: false,
    uids: [1000670000],
    gids: [1000670001],
    v4: { ...CNI_BASIC, ...CNI_BASIC_V4 },
    nft6: CNI_NFT6,
  },
  // The plugin takes a proxy UID of 0 as its default, 1337: the same flags as cni-basic.
  {
    name: 'cni-custom-uid-zero',
    source: 'istio-cni',
    args: CNI_ARGS,
    dual: false,
    uids: [1337],
    gids: [1337],
    v4: { ...CNI_BASIC, ...CNI_BASIC_V4 },
    nft6: CNI_NFT6,
  },
  {
    name: 'cni-custom-uid-tproxy',
    source: 'istio-cni',
    args: ['-m', 'TPROXY', ...CNI_ARGS, '-u', '1000670000', '-g', '1000670001'],
    dual: false,
    uids: [1000670000],
    gids: [1000670001],
    v4: { ...CNI_TPROXY, ...CNI_BASIC_V4 },
    nft6: CNI_TPROXY_NFT6,
  },
  // ---- Ours: owner groups where something is captured (Istio's own owner-group tests capture nothing) ----
  {
    name: 'owner-groups-capture',
    source: 'extra',
    args: ['-i', '*'],
    env: { ISTIO_OUTBOUND_OWNER_GROUPS: 'java,202' },
    dual: false,
    uids: [1337],
    gids: [1337],
    group: 3001,
    // `-m owner ! --gid-owner 3001 -m owner ! --gid-owner 202 -j RETURN` before the capture: only the groups' members.
    v4: { 'group → remote:9090': 'proxy' },
    nft6: { 'group → remote:9090': 'proxy' },
  },
  {
    name: 'owner-groups-exclude-capture',
    source: 'extra',
    args: ['-i', '*'],
    env: { ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: '888,ftp' },
    dual: false,
    uids: [1337],
    gids: [1337],
    group: 3002,
    v4: { ...fill([...OUTBOUND_ALL, ...OUTBOUND_V4_RANGES, 'app → side3:9090'], 'proxy') },
    nft6: { ...fill([...OUTBOUND_ALL, 'app → side3:9090'], 'proxy') },
  },
]

export const RESOLV_DEFAULT = RESOLV_127053

/** The injector's istio-init arguments: Istio's injection template with its default values. */
export const INJECTOR_ARGS = [
  '-p',
  '15001',
  '-z',
  '15006',
  '-u',
  '1337',
  '-m',
  'REDIRECT',
  '-i',
  '*',
  '-x',
  '',
  '-b',
  '*',
  '-d',
  '15090,15021,15020',
  '--log_output_level=default:info',
]
export const BASE_ISTIO_ARGS = BASE_ARGS
