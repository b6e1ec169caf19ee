import t from 'tap'
import { ConfigError } from '../../../src/errors.js'
import { formatSettings } from '../../../src/settings/format.js'
import { OPTIONS, OPTION_KEYS } from '../../../src/settings/options.js'
import { loadSettings, type ReadServices } from '../../../src/settings/load.js'
import { parseServiceFile } from '../../../src/settings/services.js'
import { readServicesFile } from '../../../src/settings/services-file.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { REFUSED } from '../../helpers/rows.js'

t.test('every setting has rows of refused values', async t => {
  for (const key of OPTION_KEYS) t.ok(REFUSED[OPTIONS[key].env]?.length, OPTIONS[key].env)
})

t.test('a refused value names the variable, the value and what is accepted', async t => {
  for (const [variable, values] of Object.entries(REFUSED)) {
    for (const value of values) {
      const error = (await loadSettings({ [variable]: value }, {}, readServicesFile).then(
        () => t.fail(`${variable}=${value} is accepted`),
        (e: unknown) => e,
      )) as ConfigError
      t.type(error, ConfigError, `${variable}=${value}`)
      t.equal(error.variable, variable)
      t.equal(error.value, value)
      t.match(error.message, `${variable}=${JSON.stringify(value)} is not valid: expected `)
      t.ok(error.accepted.length > 10, 'says what is accepted')
      t.equal(error.exitCode, 2)
    }
  }
})

t.test('a flag wins over its env var, and a bad flag is reported by its flag name', async t => {
  t.equal(parseSettings({ ISTIO_PROXY_PORT: '7000' }, { proxyPort: '7001' }).proxyPort, 7001)
  t.equal(parseSettings({ ISTIO_PROXY_PORT: 'bad' }, { proxyPort: '7001' }).proxyPort, 7001)
  const error = t.throws(() => parseSettings({ ISTIO_PROXY_PORT: '7000' }, { proxyPort: '99999' })) as ConfigError
  t.equal(error.variable, '--proxy-port')
})

t.test('defaults follow the design document', async t => {
  const settings = parseSettings({})
  t.same(formatSettings(settings), {
    ISTIO_PROXY_PORT: '5001',
    ISTIO_INBOUND_CAPTURE_PORT: '',
    ISTIO_PROXY_UID: '1337',
    ISTIO_PROXY_GID: '',
    ISTIO_OUTBOUND_METHOD: 'uid',
    ISTIO_SO_MARK: '0x1',
    ISTIO_NET_CLS_ID: '0x100001',
    ISTIO_INBOUND_PORTS: '*',
    ISTIO_INBOUND_EXCLUDE_PORTS: '',
    ISTIO_INBOUND_INTERCEPTION_MODE: 'REDIRECT',
    ISTIO_INBOUND_TPROXY_MARK: '1337',
    ISTIO_INBOUND_TPROXY_ROUTE_TABLE: '133',
    ISTIO_OUTBOUND_EXCLUDE_PORTS: '',
    ISTIO_OUTBOUND_INCLUDE_CIDRS: '*',
    ISTIO_OUTBOUND_EXCLUDE_CIDRS: '',
    ISTIO_EXCLUDE_INTERFACES: '',
    ISTIO_EXCLUDE_INTERFACES_SCOPE: 'routes',
    ISTIO_DNS_CAPTURE: 'off',
    ISTIO_DNS_PORT: '15053',
    ISTIO_RESOLV_CONF: '/etc/resolv.conf',
    ISTIO_DNS_SERVERS: '',
    ISTIO_SERVICES: '',
    ISTIO_SERVICES_FILE: '',
    ISTIO_BACKEND: 'auto',
    ISTIO_IPV6: 'auto',
    ISTIO_VERIFY: 'live',
    ISTIO_ACCEPT_BPF_PROGRAMS: '',
    ISTIO_LOG_FORMAT: 'text',
    ISTIO_EXEC_TIMEOUT: '30',
    ISTIO_STRICT_ENV: 'false',
  })
})

t.test('accepted forms: hex, spaces in lists, ranges, masks, empty lists', async t => {
  const s = parseSettings({
    ISTIO_PROXY_PORT: '0x1389',
    ISTIO_PROXY_GID: ' 1337 ',
    ISTIO_SO_MARK: '0x100/0xf00',
    ISTIO_NET_CLS_ID: '1048577',
    ISTIO_INBOUND_PORTS: ' 80 , 8080,9000-9100 ',
    ISTIO_OUTBOUND_EXCLUDE_PORTS: '15020, 15021',
    ISTIO_OUTBOUND_INCLUDE_CIDRS: '',
    ISTIO_OUTBOUND_EXCLUDE_CIDRS: '169.254.169.254, 2001:db8::/32',
  })
  t.equal(s.proxyPort, 5001)
  t.equal(s.proxyGid, 1337)
  t.same(s.mark, { value: 0x100, mask: 0xf00 })
  t.equal(s.netClsId, 0x100001)
  t.same(s.inboundPorts, [
    { from: 80, to: 80 },
    { from: 8080, to: 8080 },
    { from: 9000, to: 9100 },
  ])
  t.same(s.outboundIncludeCidrs, [])
  t.same(formatSettings(s)['ISTIO_OUTBOUND_EXCLUDE_CIDRS'], '169.254.169.254/32,2001:db8::/32')
  t.same(parseSettings({ ISTIO_SO_MARK: '0x1/0xffffffff' }).mark, { value: 1, mask: undefined }, 'a full mask is no mask')
  t.same(parseSettings({ ISTIO_INBOUND_PORTS: '' }).inboundPorts, [], 'empty means no inbound capture')
})

t.test("TPROXY: a mark that the mark method's match takes is refused; tables and marks at their bounds are accepted", async t => {
  for (const [soMark, tproxyMark] of [
    ['1337', '1337'],
    ['0x500/0xf00', '0x539'],
  ]) {
    const error = t.throws(() =>
      parseSettings({
        ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
        ISTIO_OUTBOUND_METHOD: 'mark',
        ISTIO_SO_MARK: soMark,
        ISTIO_INBOUND_TPROXY_MARK: tproxyMark,
      }),
    ) as ConfigError
    t.equal(error.variable, 'ISTIO_INBOUND_TPROXY_MARK', `${soMark} against ${tproxyMark}`)
    t.equal(error.value, tproxyMark)
  }
  t.ok(parseSettings({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_OUTBOUND_METHOD: 'mark', ISTIO_SO_MARK: '0x1' }), 'the defaults differ')
  t.ok(
    parseSettings({ ISTIO_INBOUND_INTERCEPTION_MODE: 'REDIRECT', ISTIO_OUTBOUND_METHOD: 'mark', ISTIO_SO_MARK: '1337' }),
    'no clash without TPROXY',
  )
  for (const table of ['1', '252', '256', '4294967295'])
    t.equal(parseSettings({ ISTIO_INBOUND_TPROXY_ROUTE_TABLE: table }).inboundTproxyRouteTable, Number(table))
  t.equal(parseSettings({ ISTIO_INBOUND_TPROXY_MARK: '0xffffffff' }).inboundTproxyMark, 0xffffffff)
})

t.test('an IPv6 CIDR while IPv6 is off is refused, not dropped', async t => {
  const error = t.throws(() => parseSettings({ ISTIO_IPV6: 'false', ISTIO_OUTBOUND_EXCLUDE_CIDRS: '10.0.0.0/8,2001:db8::/32' })) as ConfigError
  t.equal(error.variable, 'ISTIO_OUTBOUND_EXCLUDE_CIDRS')
  t.match(error.accepted, /IPv4 CIDRs only/)
  t.ok(parseSettings({ ISTIO_IPV6: 'auto', ISTIO_OUTBOUND_EXCLUDE_CIDRS: '2001:db8::/32' }))
})

t.test('with ISTIO_IPV6=false an IPv6 service is refused, from the list or the file, never dropped', async t => {
  const listed = (await loadSettings(
    { ISTIO_IPV6: 'false', ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.1:80,[2001:db8::1]:443' },
    {},
    readServicesFile,
  ).catch((e: unknown) => e)) as ConfigError
  t.type(listed, ConfigError)
  t.equal(listed.variable, 'ISTIO_SERVICES')
  t.match(listed.message, /\[2001:db8::1\/128\]:443.*IPv4 services only while ISTIO_IPV6=false/)
  const file: ReadServices = async (_path, variable) => parseServiceFile('198.18.0.1\n# a comment\n2001:db8::/32\n', variable)
  const fromFile = (await loadSettings({ ISTIO_IPV6: 'false', ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES_FILE: '/s' }, {}, file).catch(
    (e: unknown) => e,
  )) as ConfigError
  t.equal(fromFile.variable, 'ISTIO_SERVICES_FILE')
  t.match(fromFile.message, /line 3: 2001:db8::\/32/)
  const kept = await loadSettings({ ISTIO_IPV6: 'auto', ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES_FILE: '/s' }, {}, file)
  t.equal(kept.services.length, 2, 'accepted while IPv6 is captured')
})

t.test('ISTIO_DNS_SERVERS names the resolv-conf nameservers outright: ISTIO_RESOLV_CONF is then never opened', async t => {
  const refuse = async (): Promise<never> => {
    throw new Error('the resolv.conf was read')
  }
  const settings = await loadSettings(
    { ISTIO_DNS_CAPTURE: 'resolv-conf', ISTIO_DNS_SERVERS: '198.18.0.53, 2001:db8::53', ISTIO_RESOLV_CONF: '/nonexistent' },
    {},
    readServicesFile,
    refuse,
  )
  t.same(
    settings.nameservers.map(c => `${c.address}/${c.prefix}`),
    ['198.18.0.53/32', '2001:db8::53/128'],
  )
})
