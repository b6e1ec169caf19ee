// Istio's configuration as Istio derives it: defaults, each bound variable in order, the flags last; the pod's
// facts (its users and groups, resolv.conf, its addresses) as Istio reads them; and the refusals, each naming the
// setting and the value.
import t from 'tap'
import { ConfigError, UsageError } from '../../../../src/errors.js'
import { parseArgv } from '../../../../src/settings/istio/argv.js'
import { readIstioLogging, readIstioValues, resolveIstioConfig, type IstioFacts } from '../../../../src/settings/istio/config.js'
import { ALL_ISTIO_FLAGS, ISTIO_FLAGS } from '../../../../src/settings/istio/options.js'
import { INJECTOR_ARGS } from '../../../helpers/istio-matrix.js'

const FACTS: IstioFacts = {
  passwd: 'root:x:0:0::/root:/bin/sh\nenvoy:x:2000:2000::/:/sbin/nologin\n',
  group: 'root:x:0:\njava:x:3001:\nenvoy:x:2100:\n',
  resolvConf: 'search svc.cluster.local\nnameserver 198.18.0.53\nnameserver 2001:db8::53\n',
  addresses: ['127.0.0.1', '198.18.0.1', '::1', 'fe80::1', '2001:db8::1'],
}

const configure = (argv: string[], env: Record<string, string> = {}, facts: Partial<IstioFacts> = {}) =>
  resolveIstioConfig(readIstioValues(parseArgv(argv, ALL_ISTIO_FLAGS), env), env, { ...FACTS, ...facts })

t.test("Istio's defaults", async t => {
  const c = configure([])
  t.match(c, {
    proxyPort: 15001,
    inboundCapturePort: 15006,
    inboundTunnelPort: 15008,
    proxyUids: [1337],
    proxyGids: [1337],
    tproxy: false,
    inboundPorts: [],
    outboundInclude: [],
    outboundExclude: [],
    tproxyMark: 1337,
    tproxyRouteTable: 133,
    dns: 'off',
    ownerGroups: { except: true, gids: [] },
    loopbackCidr: { family: 'ipv4', address: '127.0.0.1', prefix: 32 },
    enableIpv6: false,
    hostIp: '198.18.0.1',
    probePort: 15002,
    probeTimeoutMs: 5000,
    iptablesVariant: undefined,
    nativeNftables: false,
  })
})

t.test("the injector's own command line", async t => {
  const c = configure(INJECTOR_ARGS)
  t.match(c, {
    outboundInclude: 'all',
    inboundPorts: 'all',
    inboundExcludePorts: [
      { from: 15090, to: 15090 },
      { from: 15021, to: 15021 },
      { from: 15020, to: 15020 },
    ],
  })
})

t.test('every bound flag is set by its variable, named as Istio names it', async t => {
  for (const [key, flag] of Object.entries(ISTIO_FLAGS)) {
    for (const variable of flag.env) {
      const value = flag.kind === 'bool' ? 'true' : flag.kind === 'uint16' ? '15099' : flag.kind === 'duration' ? '2s' : 'x'
      const values = readIstioValues(parseArgv([], ALL_ISTIO_FLAGS), { [variable]: value })
      t.equal(values.from[key], variable, `${variable} sets --${flag.long}`)
      t.equal(variable, variable === flag.env[0] ? flag.long.toUpperCase().replaceAll('-', '_') : variable, variable)
    }
  }
  t.same(ISTIO_FLAGS.proxyPort.env, [], '--envoy-port alone has no variable')
  t.same(ISTIO_FLAGS.redirectDns.env, ['REDIRECT_DNS', 'ISTIO_META_DNS_CAPTURE'])
  t.same(ISTIO_FLAGS.dropInvalid.env, ['DROP_INVALID', 'INVALID_DROP'])
  t.same(ISTIO_FLAGS.dualStack.env, ['DUAL_STACK', 'ISTIO_DUAL_STACK'])
})

t.test('a later variable wins over an earlier one, a flag over both', async t => {
  t.equal(configure([], { REDIRECT_DNS: 'false', ISTIO_META_DNS_CAPTURE: 'true', CAPTURE_ALL_DNS: 'true' }).dns, 'all')
  t.equal(configure(['--redirect-dns=false'], { ISTIO_META_DNS_CAPTURE: 'true' }).dns, 'off')
  t.same(configure([], { ISTIO_INBOUND_PORTS: '80' }).inboundPorts, [{ from: 80, to: 80 }])
  t.equal(configure(['-b', '*'], { ISTIO_INBOUND_PORTS: '80' }).inboundPorts, 'all')
  t.same(configure(['-u', '1', '-u', '2']).proxyUids, [2], 'a flag given twice keeps its last value')
})

t.test('an empty boolean variable is unset; a bad one is refused naming it (Istio would ignore it)', async t => {
  t.equal(configure([], { ISTIO_META_DNS_CAPTURE: '' }).dns, 'off')
  t.throws(() => configure([], { ISTIO_META_DNS_CAPTURE: 'yes' }), { name: 'ConfigError', variable: 'ISTIO_META_DNS_CAPTURE', value: 'yes' })
  t.throws(() => configure([], { PROBE_TIMEOUT: '5' }), { name: 'ConfigError', variable: 'PROBE_TIMEOUT' })
  t.throws(() => configure([], { IPTABLES_PROBE_PORT: '70000' }), { name: 'ConfigError', variable: 'IPTABLES_PROBE_PORT' })
})

t.test('a bad value of a kind on the command line is refused as pilot-agent refuses it', async t => {
  for (const argv of [['--dry-run=maybe'], ['--iptables-probe-port', '70000'], ['--probe-timeout', '5'], ['--vklog', 'x']]) {
    t.throws(() => configure(argv), UsageError, JSON.stringify(argv))
  }
  for (const text of ['1', 't', 'T', 'TRUE', 'true', 'True']) t.equal(configure([`--dual-stack=${text}`]).enableIpv6, true, text)
  t.equal(configure(['--probe-timeout', '1m30.5s']).probeTimeoutMs, 90_500)
  t.equal(configure(['--iptables-probe-port', '0x3a9a']).probePort, 15002)
})

t.test("the proxy's IDs: numbers or names, ENVOY_USER's UID by default, the GIDs the UIDs' unless given", async t => {
  t.match(configure([], { ENVOY_USER: 'envoy' }), { proxyUids: [2000], proxyGids: [2000] })
  t.match(configure([], { ENVOY_USER: 'nobody-here' }), { proxyUids: [1337], proxyGids: [1337] })
  t.match(configure(['-u', '3,4']), { proxyUids: [3, 4], proxyGids: [3, 4] })
  t.match(configure(['-u', '3,4', '-g', '1,2']), { proxyUids: [3, 4], proxyGids: [1, 2] })
  // A name's GIDs are the group of that name, as iptables would look it up.
  t.match(configure(['-u', 'envoy']), { proxyUids: [2000], proxyGids: [2100] })
  t.throws(() => configure(['-u', 'ghost']), { name: 'ConfigError', variable: '--proxy-uid' })
  t.throws(() => configure(['-g', 'ghost']), { name: 'ConfigError', variable: '--proxy-gid' })
})

t.test('IPv6 is captured as Istio decides it, from the pod addresses', async t => {
  const rows: [string[], boolean, string[]][] = [
    [['198.18.0.1', '2001:db8::1'], false, []],
    [['198.18.0.1', '2001:db8::1'], true, ['--dual-stack']],
    [['198.18.0.1', 'fe80::1'], false, ['--dual-stack']],
    [['2001:db8::1'], true, []],
    [['169.254.1.1', '2001:db8::1'], true, []],
    [['::ffff:198.18.0.1', '2001:db8::1'], false, []],
  ]
  for (const [addresses, ipv6, argv] of rows) t.equal(configure(argv, {}, { addresses }).enableIpv6, ipv6, `${addresses.join(',')} ${argv.join(' ')}`)
  t.throws(() => configure([], {}, { addresses: ['127.0.0.1', '::1', 'fe80::1'] }), ConfigError, 'no global address: refused, as Istio refuses it')
})

t.test('DNS: the nameservers of /etc/resolv.conf, read only when they are needed', async t => {
  t.match(configure(['--redirect-dns']), {
    dns: 'servers',
    dnsServers: [
      { address: '198.18.0.53', prefix: 32 },
      { address: '2001:db8::53', prefix: 128 },
    ],
  })
  t.match(configure(['--redirect-dns', '--capture-all-dns'], {}, { resolvConf: undefined }), { dns: 'all', dnsServers: [] })
  t.match(configure(['--redirect-dns'], {}, { resolvConf: 'search x\n' }), { dns: 'off' }, 'no nameserver: off, as Istio turns it off')
  t.throws(() => configure(['--redirect-dns'], {}, { resolvConf: undefined }), ConfigError)
  t.throws(() => configure(['--redirect-dns'], {}, { resolvConf: 'nameserver fe80::1%eth0\n' }), ConfigError)
  t.equal(configure([], {}, { resolvConf: undefined }).dns, 'off')
})

t.test('owner groups: every group but the excluded, or only the listed, by GID or name', async t => {
  t.match(configure([], { ISTIO_OUTBOUND_OWNER_GROUPS: 'java,202' }), { ownerGroups: { except: false, gids: [3001, 202] } })
  t.match(configure([], { ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: '888,java' }), { ownerGroups: { except: true, gids: [888, 3001] } })
  t.match(configure([], { ISTIO_OUTBOUND_OWNER_GROUPS: '' }), { ownerGroups: { except: false, gids: [] } }, 'empty: nobody is captured')
  const many = Array.from({ length: 65 }, (_, i) => String(5000 + i)).join(',')
  t.throws(() => configure([], { ISTIO_OUTBOUND_OWNER_GROUPS: many }), { name: 'ConfigError', variable: 'ISTIO_OUTBOUND_OWNER_GROUPS' })
  t.doesNotThrow(() => configure([], { ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: many }), 'an exclusion list has no limit')
  t.throws(() => configure([], { ISTIO_OUTBOUND_OWNER_GROUPS: 'ghosts' }), { name: 'ConfigError', variable: 'ISTIO_OUTBOUND_OWNER_GROUPS' })
})

t.test('include ranges: a loopback one is noticed', async t => {
  t.match(configure(['-i', '127.1.2.3/32']), { includeHasLoopback: true })
  t.match(configure(['-i', '::1/128']), { includeHasLoopback: true })
  t.match(configure(['-i', '10.0.0.0/8,2001:db8::/32']), {
    includeHasLoopback: false,
    outboundInclude: [{ address: '10.0.0.0' }, { address: '2001:db8::' }],
  })
})

t.test('refusals name the setting and quote the value; nothing else is read', async t => {
  const rows: [string[], Record<string, string>, string][] = [
    [['-p', '0'], {}, '--envoy-port'],
    [['-z', 'x'], {}, '--inbound-capture-port'],
    [['-b', 'http'], {}, '--istio-inbound-ports'],
    [['-b', '80-90'], {}, '--istio-inbound-ports'],
    [['-i', '10.0.0.1'], {}, '--istio-service-cidr'],
    [['-x', '*'], {}, '--istio-service-exclude-cidr'],
    [['-m', 'tproxy'], {}, '--istio-inbound-interception-mode'],
    [['-r', '254'], {}, '--istio-inbound-tproxy-route-table'],
    [['-t', '-1'], {}, '--istio-inbound-tproxy-mark'],
    [['-c', 'eth+'], {}, '--istio-exclude-interfaces'],
    [['-k', 'a/b'], {}, '--kube-virt-interfaces'],
    [['--force-iptables-binary', 'nftables'], {}, '--force-iptables-binary'],
    [['--network-namespace', 'netns'], {}, '--network-namespace'],
    [[], { ISTIO_INBOUND_PORTS: 'x' }, 'ISTIO_INBOUND_PORTS'],
    [[], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '10.0.0.1/32' }, 'ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
    [[], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '127.0.0.1/4' }, 'ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
    [[], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '127.0.0.1' }, 'ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
  ]
  for (const [argv, env, variable] of rows) {
    t.throws(() => configure(argv, env), { name: 'ConfigError', variable }, `${JSON.stringify(argv)} ${JSON.stringify(env)}`)
  }
  t.match(configure([], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '127.0.0.1/8' }).loopbackCidr, { address: '127.0.0.0', prefix: 8 })
})

t.test('logging: JSON, the default scope level, targets; a bad level is a usage error', async t => {
  const log = (argv: string[]) => readIstioLogging(readIstioValues(parseArgv(argv, ALL_ISTIO_FLAGS), {}))
  t.same(log([]), { json: false, level: 'info', targets: ['stdout'] })
  t.same(log(['--log_as_json', '--log_output_level=default:debug,ads:none', '--log_target', 'stderr']), {
    json: true,
    level: 'debug',
    targets: ['stderr'],
  })
  t.equal(log(['--log_output_level=warn']).level, 'warn', 'a level alone is the default scope')
  t.equal(log(['--log_output_level=all:error']).level, 'error')
  for (const argv of [['--log_output_level=default:loud'], ['--log_output_level=a:b:c'], ['--log_stacktrace_level=default:x']]) {
    t.throws(() => log(argv), UsageError, JSON.stringify(argv))
  }
})
