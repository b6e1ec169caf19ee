// validate's choice of destinations beyond the pod: routes read as /proc prints them, the route the kernel picks,
// and, from the plan, which destinations out of which interface must be captured. Pure: no namespace needed.
import t from 'tap'
import { parseIpv4Routes, parseIpv6Routes, routeOf } from '../../../src/net/routes.js'
import { buildPlan } from '../../../src/plan/build.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { chooseReachTargets } from '../../../src/verify/reach.js'

// As a little-endian machine prints them: eth0 with 198.19.7.5/24 and a default route, net1 with 198.18.9.0/24.
const ROUTE = [
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
  'eth0\t00000000\t010713C6\t0003\t0\t0\t0\t00000000\t0\t0\t0',
  'eth0\t000713C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  'net1\t000912C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  'eth9\t000A12C6\t00000000\t0201\t0\t0\t0\t00FFFFFF\t0\t0\t0',
].join('\n')
const IPV6_ROUTE = [
  '20010db8000700000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
  'fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000700000000000000000001 00000400 00000002 00000000 00000003     eth0',
  '20010db8000700000000000000000005 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo',
  'ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0',
].join('\n')

t.test('routes are read as /proc prints them; loopback, local, link-local, multicast and reject routes are left out', async t => {
  const v4 = parseIpv4Routes(ROUTE, true)
  t.same(
    v4.map(r => `${r.iface} ${r.destination.address}/${r.destination.prefix}`),
    ['eth0 0.0.0.0/0', 'eth0 198.19.7.0/24', 'net1 198.18.9.0/24'],
  )
  t.same(
    parseIpv4Routes(
      ROUTE.replace('010713C6', 'C6130701')
        .replace(/000713C6/, 'C6130700')
        .replace('00FFFFFF', 'FFFFFF00'),
      false,
    )
      .map(r => r.destination.address)
      .slice(0, 2),
    ['0.0.0.0', '198.19.7.0'],
    'big-endian hosts print the other way round',
  )
  const v6 = parseIpv6Routes(IPV6_ROUTE)
  t.same(
    v6.map(r => `${r.iface} ${r.destination.address}/${r.destination.prefix}`),
    ['eth0 2001:db8:7::/64', 'eth0 ::/0'],
  )
  t.equal(routeOf(v4, '198.19.7.9')?.destination.prefix, 24, 'the longest prefix wins')
  t.equal(routeOf(v4, '203.0.113.1')?.destination.prefix, 0)
  t.equal(routeOf(v6, '198.19.7.9'), undefined, 'no route of the other family')
})

const OWN = [
  { iface: 'eth0', address: '198.19.7.5' },
  { iface: 'net1', address: '198.18.9.1' },
]
const APP = { uid: 1000, gid: 1000 }
const PORTS = [80, 443, 50000]
const plan = (env: Record<string, string> = {}) => buildPlan(parseSettings(env), ['ipv4']).families[0]!
const describe = (choice: ReturnType<typeof chooseReachTargets>) => choice.targets.map(x => `${x.iface} ${x.address}:${x.port}>${x.proxyPort}`)

t.test('every interface with a route gets destinations routed out of it, on each port, while the plan captures them', async t => {
  const routes = parseIpv4Routes(ROUTE, true)
  const all = chooseReachTargets(plan(), routes, OWN, APP, PORTS)
  t.same(describe(all), [
    'eth0 203.0.113.1:80>5001',
    'eth0 203.0.113.1:443>5001',
    'eth0 203.0.113.1:50000>5001',
    'eth0 198.19.7.1:80>5001',
    'eth0 198.19.7.1:443>5001',
    'eth0 198.19.7.1:50000>5001',
    'net1 198.18.9.2:80>5001',
    'net1 198.18.9.2:443>5001',
    'net1 198.18.9.2:50000>5001',
  ])
  t.same(all.unchecked, [])
  const rows: [string, Record<string, string>, RegExp, string[]][] = [
    [
      'an interface the operator excludes (all of its traffic, as Istio) is not probed',
      { ISTIO_EXCLUDE_INTERFACES: 'net1', ISTIO_EXCLUDE_INTERFACES_SCOPE: 'all' },
      /^eth0/,
      ['net1'],
    ],
    ['excluded ports are not probed', { ISTIO_OUTBOUND_EXCLUDE_PORTS: '80,443' }, /:50000>/, []],
    ['an include list is probed inside it', { ISTIO_OUTBOUND_INCLUDE_CIDRS: '198.18.9.0/24' }, /^net1 198\.18\.9\.2:/, ['eth0']],
    ['the proxy port is where they must land', { ISTIO_PROXY_PORT: '15001' }, />15001$/, []],
  ]
  for (const [name, env, each, unchecked] of rows) {
    const choice = chooseReachTargets(plan(env), routes, OWN, APP, PORTS)
    t.ok(choice.targets.length > 0 && choice.targets.every(x => each.test(`${x.iface} ${x.address}:${x.port}>${x.proxyPort}`)), name, {
      got: describe(choice),
    })
    t.same(
      choice.unchecked.map(u => u.iface),
      unchecked,
      `${name}: unchecked interfaces`,
    )
  }
  t.same(
    describe(chooseReachTargets(plan({ ISTIO_PROXY_UID: '1000' }), routes, OWN, APP, PORTS)),
    [],
    "the app's UID exempt: nothing it sends is captured",
  )
})

t.test('method explicit: the listed services are the destinations, on their own ports', async t => {
  const routes = parseIpv4Routes(ROUTE, true)
  const choice = chooseReachTargets(
    plan({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.9.0/28:8080,10.96.0.10:53' }),
    routes,
    OWN,
    APP,
    PORTS,
  )
  t.same(describe(choice), ['eth0 10.96.0.10:53>5001', 'net1 198.18.9.2:8080>5001'])
})
