import t from 'tap'
import { buildPlan } from '../../../src/plan/build.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { FAMILIES } from '../../../src/settings/types.js'

const SCENARIOS: Record<string, Record<string, string>> = {
  defaults: {},
  mark: { ISTIO_OUTBOUND_METHOD: 'mark', ISTIO_PROXY_GID: '99' },
  cgroup: { ISTIO_OUTBOUND_METHOD: 'cgroup' },
  'include some': { ISTIO_OUTBOUND_INCLUDE_CIDRS: '198.18.0.0/15', ISTIO_OUTBOUND_EXCLUDE_PORTS: '22,443' },
  'inbound list': { ISTIO_INBOUND_PORTS: '80,8080', ISTIO_INBOUND_EXCLUDE_PORTS: '8080' },
}

for (const [name, env] of Object.entries(SCENARIOS)) {
  t.test(`invariants hold: ${name}`, async t => {
    const settings = parseSettings(env)
    for (const plan of buildPlan(settings, FAMILIES).families) {
      const outbound = plan.chains.find(c => c.hook === 'OUTPUT')!
      const targets = outbound.rules.map(r => r.target.kind)
      if (!targets.includes('redirect')) {
        t.same(outbound.rules, [], `${plan.family}: nothing to capture, so no rules at all`)
        continue
      }
      t.ok(targets.lastIndexOf('return') < targets.indexOf('redirect'), `${plan.family}: every bypass precedes the capture`)
      t.ok(
        outbound.rules.some(r => r.purpose === `proxy-${settings.outboundMethod}`),
        `${plan.family}: the proxy identity is exempt`,
      )
      const loopback = outbound.rules.find(r => r.purpose === 'loopback-source')
      t.same(loopback?.matches[0], {
        kind: 'source',
        cidr: { family: plan.family, address: plan.family === 'ipv4' ? '127.0.0.1' : '::1', prefix: plan.family === 'ipv4' ? 32 : 128 },
      })
      for (const rule of outbound.rules.filter(r => r.target.kind === 'redirect')) {
        t.same(rule.target, { kind: 'redirect', port: settings.proxyPort })
      }
      const inbound = plan.chains.find(c => c.hook === 'PREROUTING')!
      const inTargets = inbound.rules.map(r => r.target.kind)
      t.ok(inTargets.lastIndexOf('return') < Math.max(0, inTargets.indexOf('redirect')), `${plan.family}: inbound exclusions first`)
    }
  })
}

t.test('a CIDR lands only in its own family', async t => {
  const plan = buildPlan(parseSettings({ ISTIO_OUTBOUND_EXCLUDE_CIDRS: '10.0.0.0/8,2001:db8::/32' }), FAMILIES)
  for (const p of plan.families) {
    const cidrs = p.chains.flatMap(c => c.rules.flatMap(r => r.matches.filter(m => m.kind === 'destination')))
    t.ok(cidrs.length === 1 && cidrs.every(m => m.kind === 'destination' && m.cidr.family === p.family), p.family)
  }
})
