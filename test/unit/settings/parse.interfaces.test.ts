import t from 'tap'
import { ConfigError } from '../../../src/errors.js'
import { parseSettings } from '../../../src/settings/parse.js'

t.test('interface names the kernel takes are accepted, each once', async t => {
  t.same(parseSettings({ ISTIO_EXCLUDE_INTERFACES: ' eth0 , veth-abc.12,eth0, a23456789012345' }).excludeInterfaces, [
    'eth0',
    'veth-abc.12',
    'a23456789012345',
  ])
  t.same(parseSettings({}).excludeInterfaces, [])
  t.same(
    parseSettings({ ISTIO_EXCLUDE_INTERFACES: 'lo,eth+0,wg@1' }).excludeInterfaces,
    ['lo', 'eth+0', 'wg@1'],
    'a + or * inside a name is no wildcard',
  )
})

t.test('a bad name is refused on one line, control characters escaped', async t => {
  const error = t.throws(() => parseSettings({ ISTIO_EXCLUDE_INTERFACES: 'eth0,bad\nname' })) as ConfigError
  t.type(error, ConfigError)
  t.equal(error.message.split('\n').length, 1)
  t.match(error.message, 'ISTIO_EXCLUDE_INTERFACES="eth0,bad\\nname" is not valid: expected ')
  t.match(error.message, '"bad\\nname" is not one')
})

t.test('the inbound capture port defaults to the proxy port', async t => {
  t.equal(parseSettings({}).inboundCapturePort, undefined)
  t.equal(parseSettings({ ISTIO_INBOUND_CAPTURE_PORT: '15006' }).inboundCapturePort, 15006)
})
