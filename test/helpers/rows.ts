// Rows shared by several test files (imported from here, since importing a test file would run it again).

export const IPTABLES_BACKENDS = ['iptables-nft', 'iptables-legacy'] as const
/** Every backend: the traffic suites run over all of them. */
export const BACKENDS = [...IPTABLES_BACKENDS, 'nftables'] as const

// Every refused value, per variable. Each must give a ConfigError naming the variable and quoting the value.
export const REFUSED: Record<string, string[]> = {
  ISTIO_PROXY_PORT: ['70000', '65536', '0', '-1', 'abc', '0x', '5001x', '', ' ', '50.1', '1e3', '+80', '0x10000', '08080'],
  ISTIO_INBOUND_CAPTURE_PORT: ['0', '70000', 'abc', '15006x', '-1'],
  ISTIO_DNS_CAPTURE: ['', 'on', 'true', 'resolv', 'ALL'],
  ISTIO_EXCLUDE_INTERFACES_SCOPE: ['', 'route', 'ALL', 'none'],
  ISTIO_DNS_PORT: ['0', '65536', 'dns', '', '53x'],
  ISTIO_RESOLV_CONF: ['', 'resolv.conf', 'etc/resolv.conf'],
  // An address with a prefix or a zone, a name; and any at all without resolv-conf DNS capture, which alone reads it.
  ISTIO_DNS_SERVERS: ['198.18.0.1/32', 'dns.example', '198.18.0.1,fe80::1%eth0', '198.18.0.1'],
  ISTIO_PROXY_UID: ['0', '-1', 'abc', '', '0x', '1337x', '4294967295', '4294967296', 'envoy'],
  ISTIO_PROXY_GID: ['0', '-5', 'abc', '0x', '1.5', 'proxy'],
  ISTIO_OUTBOUND_METHOD: ['', 'UID', 'owner', 'tproxy', 'explicit-please'],
  ISTIO_SO_MARK: ['0', '', 'abc', '0x', '0x1/0', '0x3/0x1', '1/2/3', '0x100000000', '-1'],
  ISTIO_NET_CLS_ID: ['0', '0x0', '', 'abc', '0x100000000', '10:1', '-1'],
  ISTIO_INBOUND_PORTS: ['70000', '0', '80,', ',80', '80,,90', '9100-9000', '80-', '-80', '1-2-3', 'http', '**', '* ,80', '0x50'],
  // Each row is one init run per iptables backend in test/kernel/integration/refused/: the kernel's three tables and the bounds.
  ISTIO_INBOUND_INTERCEPTION_MODE: ['', 'tproxy'],
  ISTIO_INBOUND_TPROXY_MARK: ['0', '0x100000000', '1337/0xffff'],
  ISTIO_INBOUND_TPROXY_ROUTE_TABLE: ['0', '253', '254', '255', 'main', '4294967296'],
  ISTIO_INBOUND_EXCLUDE_PORTS: ['*', '70000', '22-21', 'ssh', '15020,x'],
  ISTIO_OUTBOUND_EXCLUDE_PORTS: ['*', '0', '65536', '443-80', '1.5'],
  ISTIO_OUTBOUND_INCLUDE_CIDRS: ['10.0.0.0/33', '256.0.0.0/8', 'example.com', '10.0.0.0/8,', '**', '2001:db8::/129'],
  ISTIO_OUTBOUND_EXCLUDE_CIDRS: ['*', '1.2.3', '169.254.169.254/32/1', 'fe80::1%eth0', '10.0.0.0/-1'],
  ISTIO_EXCLUDE_INTERFACES: [
    'a234567890123456',
    '.',
    '..',
    'eth/0',
    'eth:0',
    'eth 0',
    'eth0,',
    'eth0,,eth1',
    'eth+',
    'veth*',
    'a"b',
    'x\ty',
    'ok,\u0001bad',
    'ünïcødé-ïnterf',
  ],
  ISTIO_SERVICES: [
    '198.18.0.10:0',
    '198.18.0.10:70000',
    '198.18.0.10:80-',
    '198.18.0.10:90-80',
    'example.com:80',
    '[198.18.0.1]:80',
    '198.18.0.1:1-2000',
    '198.18.0.0/16:443,198.18.0.10:443',
    '198.18.0.10,,198.18.0.11',
  ],
  ISTIO_SERVICES_FILE: ['/nonexistent/services.txt'],
  ISTIO_BACKEND: ['', 'nft', 'nftables-legacy', 'legacy', 'AUTO'],
  ISTIO_IPV6: ['', 'yes', '1', 'TRUE', 'dual'],
  ISTIO_VERIFY: ['', 'none', 'all'],
  ISTIO_ACCEPT_BPF_PROGRAMS: ['all', '59f4a931744dcdc', '59f4a931744dcdc6x', 'g9f4a931744dcdc6', '59f4a931744dcdc6,', '*,59f4a931744dcdc6'],
  ISTIO_LOG_FORMAT: ['', 'yaml', 'JSON'],
  ISTIO_EXEC_TIMEOUT: ['0', '', '1.5', '3601', '10s', '-1'],
  ISTIO_STRICT_ENV: ['', 'yes', '1', 'TRUE'],
}
