import t from 'tap'
import { parseSettings } from '../../src/settings/parse.js'
import { pickTarget } from '../../src/verify/probe.js'

t.test('the probe targets a local address the plan captures', async t => {
  const addresses = ['10.0.0.5', '198.18.0.1']
  t.equal(pickTarget(parseSettings({}), 'ipv4', addresses), '10.0.0.5')
  t.equal(pickTarget(parseSettings({ ISTIO_OUTBOUND_EXCLUDE_CIDRS: '10.0.0.0/8' }), 'ipv4', addresses), '198.18.0.1')
  t.equal(pickTarget(parseSettings({ ISTIO_OUTBOUND_INCLUDE_CIDRS: '172.16.0.0/12' }), 'ipv4', addresses), undefined)
  t.equal(pickTarget(parseSettings({}), 'ipv6', ['fe80::1', '2001:db8::7']), '2001:db8::7', 'link-local is skipped')
})
