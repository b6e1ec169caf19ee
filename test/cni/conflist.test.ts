// The installer's pure part: which file the runtime reads, and our element added to or taken from its text with
// every other byte kept, whatever the file's layout.
import t from 'tap'
import { chain, choosePrimary, hasOurs, listName, unchain, type Primary } from '../../src/cni/conflist.js'
import { locateJson } from '../../src/cni/json-text.js'

const ENTRY = { type: 'sidecar-redirect', settings: { ISTIO_PROXY_PORT: '15001' } }
const list = (name: string, text: string): Primary => ({ name, text, kind: 'list', cniVersion: '1.0.0' })

t.test('layouts: one line, pretty, CRLF, strings holding brackets; our element out again gives the same bytes', async t => {
  for (const text of [
    '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}',
    '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge","x":"]},[{\\"q"}, {"type":"portmap"}]}\n',
    '{\r\n  "cniVersion": "1.0.0",\r\n  "name": "a",\r\n  "plugins": [\r\n    { "type": "bridge" }\r\n  ]\r\n}\r\n',
    '{"name":"a","plugins":[{"type":"x"}],"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}',
  ]) {
    const out = chain(list('10-a.conflist', text), ENTRY).text
    const parsed = JSON.parse(out) as { plugins: unknown[] }
    t.same(parsed.plugins.at(-1), ENTRY, `ours last: ${JSON.stringify(text.slice(0, 40))}`)
    t.same(parsed.plugins.slice(0, -1), (JSON.parse(text) as { plugins: unknown[] }).plugins, '  the others unchanged')
    t.equal(unchain(out), text, '  unchain gives back the bytes')
    t.equal(chain(list('10-a.conflist', out), ENTRY).text, out, '  chaining again changes nothing')
  }
})

t.test('unchain takes ours out wherever it is, with one separator; an entry not last is moved last', async t => {
  const text = '{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"sidecar-redirect"}, {"type":"bridge"}, {"type":"sidecar-redirect","old":1}]}'
  t.equal(unchain(text), '{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}')
  t.same(
    (JSON.parse(chain(list('x.conflist', text), ENTRY).text) as { plugins: unknown[] }).plugins,
    [{ type: 'bridge' }, ENTRY],
    'a stale or misplaced entry of ours is replaced by one, last',
  )
  t.ok(hasOurs(text))
  t.notOk(hasOurs('{"plugins":['), 'a truncated text holds nothing of ours (and does not hang)')
})

t.test('choosePrimary: the lexically first that loads, by extension; listName', async t => {
  const pick = (files: Record<string, string>) => choosePrimary(Object.entries(files).map(([name, text]) => ({ name, text })))
  const good = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"b"}]}'
  const r = pick({ '20-b.conflist': good, '10-a.conflist.bak': good, '.hidden.conflist': good, '05-x.json': '{"cniVersion":"1.0.0","type":"b"}' })
  t.same([r.primary?.name, r.primary?.kind], ['.hidden.conflist', 'list'], "a dot file counts: libcni's ConfFiles lists it")
  const s = pick({ '20-b.conflist': good, '10-a.conflist.bak': good, '05-x.json': '{"cniVersion":"1.0.0","type":"b"}' })
  t.same([s.primary?.name, s.primary?.kind], ['05-x.json', 'single'], '.json is a single-plugin config; .bak is not read')
  const bad = pick({ '01-a.conflist': '{"name":"n","plugins":[]}', '02-b.conf': '{"plugins":[{"type":"b"}]}', '03-c.conflist': '[]' })
  t.same(bad.primary, undefined)
  t.same(
    bad.skipped.map(s => s.name),
    ['01-a.conflist', '02-b.conf', '03-c.conflist'],
    'each skipped file named, a list in a .conf among them',
  )
  t.same([listName('10-x.conf'), listName('10-x.json')], ['10-x.conflist', '10-x.conflist'])
  t.equal(pick({ '.conflist': good, '10-a.conflist': good }).primary?.name, '.conflist', "Go's filepath.Ext of .conflist is .conflist")
  const json = '{"a": [1, "]", {"b": null}]}'
  t.match(locateJson(json), { kind: 'object', members: [{ key: 'a', value: { kind: 'array', start: 6, end: json.lastIndexOf(']') + 1 } }] })
})
