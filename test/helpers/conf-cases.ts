// Config files and whether libcni 1.1 loads them, one row each: the installer's pure test checks its own verdict
// against the row, and the libcni test (npm run test:cni) checks the row against libcni itself, so neither can
// drift from the runtime. `network` is the name libcni gives the network when the file loads.

export interface ConfCase {
  readonly what: string
  readonly name: string
  readonly bytes: Buffer
  readonly loads: boolean
  readonly network?: string
}

const row = (what: string, name: string, text: string | Buffer, loads: boolean, network?: string): ConfCase => ({
  what,
  name,
  bytes: Buffer.isBuffer(text) ? text : Buffer.from(text),
  loads,
  ...(network !== undefined && { network }),
})

const deep = (depth: number): string =>
  `{"cniVersion":"1.0.0","name":"deep","plugins":[{"type":"bridge","x":${'['.repeat(depth)}${']'.repeat(depth)}}]}`

export const CONF_CASES: readonly ConfCase[] = [
  row('a list', '10-a.conflist', '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}', true, 'a'),
  row('a single plugin without a name', '10-a.conf', '{"cniVersion":"1.0.0","type":"bridge"}', true, ''),
  row('a single plugin in a .json', '10-a.json', '{"cniVersion":"1.0.0","name":"j","type":"bridge"}', true, 'j'),
  row('a list whose name is empty', '10-a.conflist', '{"cniVersion":"1.0.0","name":"","plugins":[{"type":"bridge"}]}', true, ''),
  row('a list without a name', '10-a.conflist', '{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}', false),
  row('a list whose name is null', '10-a.conflist', '{"cniVersion":"1.0.0","name":null,"plugins":[{"type":"bridge"}]}', false),
  row('a list whose cniVersion is a number', '10-a.conflist', '{"cniVersion":1,"name":"a","plugins":[{"type":"bridge"}]}', false),
  row('a list without a cniVersion', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge"}]}', true, 'a'),
  row('a list whose disableCheck is a string', '10-a.conflist', '{"name":"a","disableCheck":"yes","plugins":[{"type":"bridge"}]}', false),
  row('an empty plugins list', '10-a.conflist', '{"name":"a","plugins":[]}', false),
  row('plugins null', '10-a.conflist', '{"name":"a","plugins":null}', false),
  row('a null plugin', '10-a.conflist', '{"name":"a","plugins":[null]}', false),
  row('a plugin that is a string', '10-a.conflist', '{"name":"a","plugins":["bridge"]}', false),
  row('a plugin whose type key is capitalised', '10-a.conflist', '{"name":"a","plugins":[{"Type":"bridge"}]}', true, 'a'),
  row(
    'a plugin whose capability is a number',
    '10-a.conflist',
    '{"name":"a","plugins":[{"type":"bridge","capabilities":{"portMappings":1}}]}',
    false,
  ),
  row(
    'a capabilities key with a long s (Go folds it to s)',
    '10-a.conflist',
    '{"name":"a","plugins":[{"type":"bridge","capabilitie\u017f":{"x":1}}]}',
    false,
  ),
  row('a plugin whose ipam is a string', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge","ipam":"host-local"}]}', false),
  row('a plugin whose ipam type is a number', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge","ipam":{"TYPE":5}}]}', false),
  row('a plugin whose dns nameservers hold a number', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge","dns":{"nameservers":[1]}}]}', false),
  row('a plugin whose prevResult is a list', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge","prevResult":[]}]}', false),
  row(
    'nulls where strings and objects go',
    '10-a.conflist',
    '{"name":"a","plugins":[{"type":"bridge","name":null,"ipam":null,"dns":{"domain":null}}]}',
    true,
    'a',
  ),
  row(
    'keys that name JavaScript object properties',
    '10-a.conflist',
    '{"name":"a","constructor":1,"__proto__":{},"plugins":[{"type":"bridge","constructor":"x","toString":5,"ipam":{"__proto__":1}}]}',
    true,
    'a',
  ),
  row('a list that is a JSON array', '10-a.conflist', '[{"type":"bridge"}]', false),
  row('a truncated list', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge"}', false),
  row('text after the object', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge"}]} x', false),
  row(
    'a byte order mark',
    '10-a.conflist',
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"name":"a","plugins":[{"type":"bridge"}]}')]),
    false,
  ),
  row(
    'Latin-1 bytes in a string',
    '10-a.conflist',
    Buffer.from('{"name":"caf\xe9","plugins":[{"type":"bridge","note":"\xff"}]}', 'latin1'),
    true,
    'caf\ufffd',
  ),
  row('an invalid escape', '10-a.conflist', '{"name":"a\\x","plugins":[{"type":"bridge"}]}', false),
  row('a leading zero', '10-a.conflist', '{"name":"a","plugins":[{"type":"bridge","mtu":01}]}', false),
  row('a single plugin whose last type is empty', '10-a.conf', '{"cniVersion":"1.0.0","type":"bridge","type":""}', false),
  row('a single plugin, TYPE empty after type', '10-a.conf', '{"cniVersion":"1.0.0","type":"bridge","TYPE":""}', false),
  row('a single plugin, type after an empty TYPE', '10-a.conf', '{"cniVersion":"1.0.0","TYPE":"","type":"bridge"}', true, ''),
  row('a single plugin without a type', '10-a.conf', '{"cniVersion":"1.0.0","name":"x"}', false),
  row('a list in a .conf', '10-a.conf', '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}', false),
  row('a single plugin that is null', '10-a.conf', 'null', false),
  row('nested 6,000 deep', '10-a.conflist', deep(6000), true, 'deep'),
  row('nested 9,997 deep (10,000 with the list)', '10-a.conflist', deep(9997), true, 'deep'),
  row('nested 10,001 deep', '10-a.conflist', deep(9998), false),
]
