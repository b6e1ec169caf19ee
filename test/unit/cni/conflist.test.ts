// The installer's pure part: which file the runtime reads (libcni's rules, row by row from the cases the libcni test
// also runs through libcni itself), and our element added to or taken from its bytes with every other byte kept.
import t from 'tap'
import { type Config, chain, choosePrimary, hasOurs, isConfig, listName, loadConfig, refuseChain, unchain } from '../../../src/cni/conflist.js'
import { CONF_CASES } from '../../helpers/conf-cases.js'

const ENTRY = { type: 'sidecar-redirect', settings: { ISTIO_PROXY_PORT: '15001' } }
const config = (name: string, text: string | Buffer): Config => {
  const loaded = loadConfig(name, Buffer.isBuffer(text) ? text : Buffer.from(text))
  if (!isConfig(loaded)) throw new Error(`${name} does not load: ${loaded.reason}`)
  return loaded
}
const pluginsOf = (bytes: Buffer): unknown[] => (JSON.parse(bytes.toString()) as { plugins: unknown[] }).plugins

t.test("libcni's loading rules, row by row", async t => {
  for (const c of CONF_CASES) {
    const loaded = loadConfig(c.name, c.bytes)
    t.equal(isConfig(loaded), c.loads, `${c.what}: ${c.loads ? 'loads' : `skipped (${'reason' in loaded ? loaded.reason : ''})`}`)
    if (isConfig(loaded)) t.equal(loaded.network, c.network, '  with the network name libcni gives it')
  }
})

t.test('layouts: one line, pretty, CRLF, strings holding brackets; our element out again gives the same bytes', async t => {
  for (const text of [
    '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}',
    '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge","x":"]},[{\\"q"}, {"type":"portmap"}]}\n',
    '{\r\n  "cniVersion": "1.0.0",\r\n  "name": "a",\r\n  "plugins": [\r\n    { "type": "bridge" }\r\n  ]\r\n}\r\n',
    '{"name":"a","plugins":[{"type":"x"}],"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}',
  ]) {
    const out = chain(config('10-a.conflist', text), ENTRY).bytes
    t.same(pluginsOf(out).at(-1), ENTRY, `ours last: ${JSON.stringify(text.slice(0, 40))}`)
    t.same(pluginsOf(out).slice(0, -1), pluginsOf(Buffer.from(text)), '  the others unchanged')
    t.equal(unchain(out).toString(), text, '  unchain gives back the bytes')
    t.ok(chain(config('10-a.conflist', out), ENTRY).bytes.equals(out), '  chaining again changes nothing')
  }
})

t.test('bytes that are not UTF-8 are kept as they are, in and out', async t => {
  const latin1 = Buffer.from('{"cniVersion":"1.0.0","name":"caf\xe9","plugins":[{"type":"bridge","note":"\xff\xfe"}]}', 'latin1')
  const out = chain(config('10-a.conflist', latin1), ENTRY).bytes
  t.ok(out.subarray(0, latin1.length - 2).equals(latin1.subarray(0, -2)), 'every byte before our element is the owner’s')
  t.ok(unchain(out).equals(latin1), 'unchain gives back the very bytes')
})

t.test('unchain takes ours out wherever it is, with one separator; an entry not last is moved last', async t => {
  const text = '{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"sidecar-redirect"}, {"type":"bridge"}, {"TYPE":"sidecar-redirect","old":1}]}'
  t.equal(unchain(Buffer.from(text)).toString(), '{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}')
  t.same(
    pluginsOf(chain(config('x.conflist', text), ENTRY).bytes),
    [{ type: 'bridge' }, ENTRY],
    'a stale or misplaced entry of ours is replaced by one, last',
  )
  t.ok(hasOurs(Buffer.from(text)))
  t.notOk(hasOurs(Buffer.from('{"plugins":[')), 'a truncated text holds nothing of ours (and does not hang)')
})

t.test('a single-plugin file becomes the list libcni would make of it, and chaining that list again changes nothing', async t => {
  for (const [what, text, network] of [
    ['named', '{"cniVersion":"1.0.0","name":"mynet","type":"bridge"}\n', 'mynet'],
    ['nameless (libcni loads it, as the network "")', '  {"cniVersion":"1.1.0","type":"bridge","ipam":{"type":"host-local"}}  ', ''],
  ] as const) {
    const single = config('10-x.conf', text)
    const list = chain(single, ENTRY)
    t.equal(list.name, '10-x.conflist', what)
    const loaded = config(list.name, list.bytes)
    t.same(
      [loaded.kind, loaded.network, loaded.cniVersion],
      ['list', network, single.cniVersion],
      '  a list, with the name and version libcni gives it',
    )
    t.same(pluginsOf(list.bytes), [JSON.parse(text), ENTRY], '  the plugin, then ours')
    t.ok(list.bytes.includes(Buffer.from(text.trim())), '  the plugin’s bytes verbatim')
    t.ok(chain(loaded, ENTRY).bytes.equals(list.bytes), '  the next check finds it as it would chain it: no second write')
  }
  t.same([listName('10-x.conf'), listName('10-x.json')], ['10-x.conflist', '10-x.conflist'])
})

t.test('refuseChain: a version the plugin does not speak, or nothing but ours to follow', async t => {
  t.match(refuseChain(config('a.conflist', '{"cniVersion":"0.3.1","name":"a","plugins":[{"type":"bridge"}]}')), /cniVersion "0\.3\.1"/)
  t.match(refuseChain(config('a.conf', '{"type":"bridge"}')), /cniVersion ""/)
  t.match(
    refuseChain(config('a.conflist', '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"sidecar-redirect"}]}')),
    /holds no plugin but sidecar-redirect/,
  )
  t.match(refuseChain(config('a.conf', '{"cniVersion":"1.0.0","type":"sidecar-redirect"}')), /holds no plugin but sidecar-redirect/)
  t.equal(refuseChain(config('a.conflist', '{"cniVersion":"1.1.0","name":"a","plugins":[{"type":"bridge"}]}')), undefined)
})

t.test('choosePrimary: the first in Go’s byte order that loads, reading no further', async t => {
  const good = Buffer.from('{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"b"}]}')
  const files: Record<string, Buffer> = {
    '20-b.conflist': good,
    '10-a.conflist.bak': good,
    '05-x.json': Buffer.from('{"cniVersion":"1.0.0","type":"b"}'),
    '01-bad.conflist': Buffer.from('{"name":"n","plugins":[]}'),
    '\u00e9.conflist': good,
    'z.conflist': good,
  }
  const asked: string[] = []
  const choice = await choosePrimary(Object.keys(files), async name => {
    asked.push(name)
    return files[name]!
  })
  t.same([choice.primary?.name, choice.primary?.kind], ['05-x.json', 'single'], '.json is a single-plugin config; .bak is not read')
  t.same(asked, ['01-bad.conflist', '05-x.json'], 'read in order, and no further than the pick')
  t.same(
    choice.skipped.map(s => s.name),
    ['01-bad.conflist'],
  )
  const order: string[] = []
  await choosePrimary(['\u00e9.conflist', 'z.conflist', '\ud83d\ude00.conflist'], async name => {
    order.push(name)
    return { name, reason: 'x' }
  })
  t.same(order, ['z.conflist', '\u00e9.conflist', '\ud83d\ude00.conflist'], 'by UTF-8 bytes, as sort.Strings, not UTF-16 units')
  const undecided = await choosePrimary(['01-huge.conflist', '02-ok.conflist'], async name =>
    name === '01-huge.conflist' ? { name, undecided: 'too large' } : good,
  )
  t.same([undecided.primary, undecided.undecided?.name], [undefined, '01-huge.conflist'], 'nothing after a file that cannot be judged is picked')
})
