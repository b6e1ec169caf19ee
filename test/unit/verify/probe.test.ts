import t from 'tap'
import { buildPlan } from '../../../src/plan/build.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { fateOf, identityBypasses } from '../../../src/verify/fate.js'
import { pickTarget } from '../../../src/verify/probe.js'

const planOf = (env: Record<string, string>, family: 0 | 1 = 0) => buildPlan(parseSettings(env), ['ipv4', 'ipv6']).families[family]!

t.test('the probe targets a local address the plan captures, read from the plan', async t => {
  const addresses = ['10.0.0.5', '198.18.0.1']
  t.same(pickTarget(planOf({}), addresses, 40000), { address: '10.0.0.5', proxyPort: 5001 })
  t.same(pickTarget(planOf({ ISTIO_OUTBOUND_EXCLUDE_CIDRS: '10.0.0.0/8' }), addresses, 40000), { address: '198.18.0.1', proxyPort: 5001 })
  t.same(pickTarget(planOf({ ISTIO_OUTBOUND_INCLUDE_CIDRS: '172.16.0.0/12' }), addresses, 40000), {
    none: 'no address of this pod is in the capture scope',
  })
  t.same(pickTarget(planOf({}, 1), ['fe80::1', '2001:db8::7'], 40000), { address: '2001:db8::7', proxyPort: 5001 }, 'link-local is skipped')
  t.same(
    pickTarget(planOf({ ISTIO_OUTBOUND_EXCLUDE_PORTS: '40000' }), addresses, 40000),
    { none: 'no address of this pod is in the capture scope' },
    'an excluded port is not captured',
  )
  const explicit = planOf({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.0/24,10.0.0.5:443' })
  t.same(pickTarget(explicit, addresses, 40000), { address: '198.18.0.1', proxyPort: 5001 }, 'explicit: a listed service on every port')
  t.match(pickTarget(explicit, ['10.0.0.5'], 40000), { none: /listed service without a port/ })
})

t.test("the bypass checks are the plan's identity rules, whatever the method is called", async t => {
  t.same(
    identityBypasses(planOf({ ISTIO_PROXY_GID: '2000' })).map(b => [b.rule.purpose, b.match.kind]),
    [
      ['proxy-uid', 'uid-owner'],
      ['proxy-gid', 'gid-owner'],
    ],
  )
  t.same(
    identityBypasses(planOf({ ISTIO_OUTBOUND_METHOD: 'mark' })).map(b => b.match.kind),
    ['mark'],
  )
  t.same(
    identityBypasses(planOf({ ISTIO_OUTBOUND_METHOD: 'cgroup' })).map(b => b.match.kind),
    ['cgroup'],
  )
  t.same(
    identityBypasses(planOf({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.1' })).map(b => b.match.kind),
    ['uid-owner'],
  )
  const packet = { saddr: '10.0.0.5', daddr: '10.0.0.5', dport: 80, uid: 0, gid: 0, mark: 0, classid: 0, outInterface: 'lo' }
  t.match(
    fateOf(planOf({ ISTIO_OUTBOUND_METHOD: 'mark', ISTIO_SO_MARK: '0x100/0xf00' }), { ...packet, mark: 0x1100 }),
    { kind: 'return' },
    'mark under its mask',
  )
  t.same(
    fateOf(planOf({ ISTIO_OUTBOUND_METHOD: 'mark', ISTIO_SO_MARK: '0x100/0xf00' }), { ...packet, mark: 0x1f00 }),
    { kind: 'redirect', port: 5001 },
    'other bits under the mask: captured',
  )
  t.match(fateOf(planOf({}), { ...packet, uid: 1337 }), { kind: 'return' })
  t.same(fateOf(planOf({}), packet), { kind: 'redirect', port: 5001 })
  t.match(fateOf(planOf({ ISTIO_EXCLUDE_INTERFACES: 'lo', ISTIO_EXCLUDE_INTERFACES_SCOPE: 'all' }), packet), { kind: 'return' })
  t.same(fateOf(planOf({ ISTIO_EXCLUDE_INTERFACES: 'lo' }), packet), { kind: 'redirect', port: 5001 }, 'lo has no main-table routes to exempt')
})
