// The trust boundary of CNI mode, without root or a runtime: the operator's settings are taken, a pod's
// annotations only where the option table lets a pod set them and the operator's allow-list names them; sizes are
// capped; resolv-conf DNS needs the runtime's nameservers; and what the runtime is told never holds a node file.
import t from 'tap'
import { chooseCleanEnv } from '../../../src/cni/handle.js'
import { decidePod, MAX_ENV_BYTES, MAX_VALUE_BYTES, parseNetConf } from '../../../src/cni/config.js'
import { parseAnnotationsFile, unquoteGo } from '../../../src/cni/downward-api.js'
import { handleRequest, type AgentIo } from '../../../src/cni/handle.js'
import { FileConfigError } from '../../../src/errors.js'
import { OPTIONS, type PodOptionSpec } from '../../../src/settings/options.js'
import { parseCniInstallSettings } from '../../../src/settings/parse.js'

const conf = (extra: Record<string, unknown> = {}, annotations: Record<string, string> = {}, dns?: unknown) =>
  JSON.stringify({
    cniVersion: '1.1.0',
    name: 'n',
    type: 'sidecar-redirect',
    captureAll: true,
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': annotations, ...(dns !== undefined && { dns }) },
    ...extra,
  })

const decide = (stdin: string) => decidePod(parseNetConf(stdin), 'K8S_POD_NAMESPACE=shop')

// Every setting that names a node path or decides how the agent runs: the table must say operator for each.
const OPERATOR_ONLY = [
  ...['services-file', 'resolv-conf', 'dns-servers', 'backend', 'exec-timeout', 'verify', 'log-format', 'strict-env'],
  // And what widens what capture lets past: an excluded interface's whole reach, BPF programs taken unjudged.
  ...['exclude-interfaces-scope', 'accept-bpf-programs'],
]

t.test('the option table says who may set each setting; node paths and how the agent runs are the operator’s alone', async t => {
  const operator = Object.values(OPTIONS)
    .filter(spec => spec.trust === 'operator')
    .map(spec => spec.flag)
  t.same(operator.sort(), [...OPERATOR_ONLY].sort(), 'exactly these are operator-only')
  // A row without `trust` does not compile: the property is required, so a setting added later must decide.
  // @ts-expect-error trust is missing
  const row: PodOptionSpec<string> = { env: 'ISTIO_X', flag: 'x', default: '', help: '', parse: (s: string) => s }
  t.ok(row, 'the row above is a compile error')
})

t.test('an operator-only setting in an annotation is refused with code 7 naming the key, even when the operator lists it', async t => {
  for (const flag of OPERATOR_ONLY) {
    const key = `sidecar-redirect.io/${flag}`
    t.throws(
      () => decide(conf({}, { [key]: '/proc/self/environ' })),
      { code: 7, message: new RegExp(`^annotation ${key} is refused: ISTIO_\\w+ names a node path or decides how the node agent runs`) },
      key,
    )
    t.throws(
      () => parseNetConf(conf({ allowedAnnotations: [flag] })),
      { code: 7, message: new RegExp(`allowedAnnotations names ${flag}, which only the operator's settings may set`) },
      `allowedAnnotations: [${flag}] is refused`,
    )
    t.throws(
      () => parseCniInstallSettings({ ISTIO_CNI_ALLOWED_ANNOTATIONS: flag }),
      { exitCode: 2, message: /^ISTIO_CNI_ALLOWED_ANNOTATIONS=.*only the operator sets/ },
      `the installer refuses ${flag} too`,
    )
  }
})

// The weakenings a tenant would try with captureAll on.
const WEAKENINGS: Record<string, string> = {
  'exclude-interfaces': 'eth0',
  'outbound-include-cidrs': '198.19.7.5/32',
  'proxy-uid': '1000',
  'outbound-exclude-ports': '80,443',
  'inbound-ports': '',
  capture: 'disabled',
}

t.test('every other annotation is refused (7) unless the allow-list names it, and then it is applied', async t => {
  for (const [flag, value] of Object.entries(WEAKENINGS)) {
    const key = `sidecar-redirect.io/${flag}`
    t.throws(
      () => decide(conf({}, { [key]: value })),
      { code: 7, message: new RegExp(`${key}.* is refused: .*allowedAnnotations does not name`) },
      key,
    )
    const allowed = decide(conf({ allowedAnnotations: [flag] }, { [key]: value }))
    if (flag === 'capture') t.equal(allowed.captured, false, 'capture: disabled opts out once allowed')
    else t.match(allowed, { captured: true, env: { [OPTIONS[keyOf(flag)].env]: value } }, `${key} applied once allowed`)
  }
  t.throws(
    () =>
      decide(
        conf(
          { allowedAnnotations: ['outbound-exclude-ports'] },
          { 'sidecar-redirect.io/outbound-exclude-ports': '80', 'sidecar-redirect.io/proxy-uid': '1' },
        ),
      ),
    { code: 7, message: /proxy-uid is refused.*it names outbound-exclude-ports\); nothing was applied/ },
    'one refused annotation refuses the pod: nothing is applied in part',
  )
  t.match(decide(conf({}, { 'sidecar-redirect.io/capture': 'enabled', unrelated: 'x' })), { captured: true }, 'opting in needs no allow-list')
  t.throws(() => parseNetConf(conf({ allowedAnnotations: ['proxy-prot'] })), {
    code: 7,
    message: /not an annotation of ours: expected some of capture, /,
  })
})

const keyOf = (flag: string) => Object.entries(OPTIONS).find(([, spec]) => spec.flag === flag)?.[0] as keyof typeof OPTIONS

t.test('sizes are capped: an oversized annotation or setting is refused with 7 without quoting it, and DEL still cleans', async t => {
  const huge = 'x'.repeat(146 * 1024)
  const annotated = conf({ allowedAnnotations: ['outbound-exclude-ports'] }, { 'sidecar-redirect.io/outbound-exclude-ports': huge })
  const refused = t.throws(() => decide(annotated), { code: 7, message: /is 149504 bytes, over the 32768-byte limit of one value/ }) as Error
  t.ok(refused.message.length < 300, 'the message does not carry the value')
  t.throws(
    () => decide(conf({}, { 'sidecar-redirect.io/no-such': huge })),
    { code: 7, message: /over the 32768-byte limit/ },
    'checked first, whatever the key',
  )
  t.throws(() => parseNetConf(conf({ settings: { ISTIO_SERVICES: 'y'.repeat(MAX_VALUE_BYTES + 1) } })), {
    code: 7,
    message: /settings.ISTIO_SERVICES is 32769 bytes/,
  })
  const many = Object.fromEntries(
    ['ISTIO_SERVICES', 'ISTIO_OUTBOUND_EXCLUDE_CIDRS', 'ISTIO_OUTBOUND_INCLUDE_CIDRS', 'ISTIO_INBOUND_PORTS'].map(n => [
      n,
      'z'.repeat(MAX_VALUE_BYTES - 100),
    ]),
  )
  t.throws(() => parseNetConf(conf({ settings: many })), { code: 7, message: new RegExp(`over the ${MAX_ENV_BYTES}-byte limit of them all`) })
  t.same(chooseCleanEnv(annotated, 'K8S_POD_NAMESPACE=shop'), {}, 'DEL cleans with the operator’s settings (none here), not the annotation')
  const withSettings = conf(
    { settings: { ISTIO_BACKEND: 'nftables', ISTIO_SERVICES_FILE: '/etc/services.list', ISTIO_OUTBOUND_METHOD: 'explicit' } },
    { 'sidecar-redirect.io/proxy-uid': huge },
  )
  t.same(chooseCleanEnv(withSettings, ''), { ISTIO_BACKEND: 'nftables' }, 'and keeps the backend, but names no file')
  t.same(chooseCleanEnv(conf({ settings: { ISTIO_PROXY_PORT: '0' } }), ''), {}, 'settings parse refuses: the defaults')
  t.same(chooseCleanEnv('{', ''), {}, 'a config that is not JSON: the defaults')
})

t.test(
  'resolv-conf DNS capture takes the runtime’s dns.servers (the CNI conventions’ key), or is refused with 7; the node’s file is never named',
  async t => {
    const settings = { ISTIO_DNS_CAPTURE: 'resolv-conf' }
    t.match(decide(conf({ settings }, {}, { servers: ['198.19.7.1', '2001:db8::53'], searches: ['svc.cluster.local'], options: ['ndots:5'] })), {
      captured: true,
      env: { ISTIO_DNS_SERVERS: '198.19.7.1,2001:db8::53' },
      sources: new Map([['ISTIO_DNS_SERVERS', 'runtimeConfig.dns.servers']]),
    })
    // `nameservers` is the result's key, not the capability's: not taken.
    for (const dns of [undefined, {}, { servers: [] }, { nameservers: ['198.19.7.1'] }]) {
      t.throws(
        () => decide(conf({ settings }, {}, dns)),
        { code: 7, message: /settings.ISTIO_DNS_CAPTURE=resolv-conf needs the nameservers the runtime passes in runtimeConfig.dns.servers/ },
        JSON.stringify(dns),
      )
    }
    t.match(
      decide(conf({ settings }, {}, { Servers: ['198.19.7.1'], Searches: null, Options: null })),
      { env: { ISTIO_DNS_SERVERS: '198.19.7.1' } },
      "containerd's key, Servers (go-cni's DNS struct has no JSON tags), as Go's decoder reads it",
    )
    t.throws(() => parseNetConf(conf({}, {}, { servers: ['198.19.7.1/24'] })), {
      code: 7,
      message: /servers\[0\]="198.19.7.1\/24" is not an IPv4/,
    })
    t.throws(() => parseNetConf(conf({}, {}, { servers: ['fe80::1%eth0'] })), { code: 7 })
    t.throws(() => parseNetConf(conf({}, {}, { servers: Array(17).fill('198.19.7.1') })), { code: 7, message: /more than 16/ })
    for (const name of ['ISTIO_RESOLV_CONF', 'ISTIO_DNS_SERVERS'])
      t.throws(() => parseNetConf(conf({ settings: { [name]: '/etc/resolv.conf' } })), { code: 7, message: /is not used in CNI mode/ }, name)
    t.match(
      decide(conf({ settings: { ISTIO_DNS_CAPTURE: 'all' } })),
      { captured: true, env: { ISTIO_DNS_CAPTURE: 'all' } },
      'capture of all DNS needs no nameserver',
    )
  },
)

const SECRET = 'SECRET-7f3a9c'

const fakeIo = (overrides: Partial<AgentIo>): AgentIo => ({
  runCli: async () => ({ exitCode: 0, output: '' }),
  inspectNetns: async () => ({ kind: 'netns', id: '4:4026532000' }),
  ownedRules: async () => [],
  missingTools: async () => [],
  readServices: async () => [],
  keep: async () => undefined,
  forget: async () => undefined,
  ...overrides,
})

const POD = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop' }

t.test('the reply never carries what a node file holds or is: the agent’s log gets it instead', async t => {
  const rows: [string, Partial<AgentIo>, Record<string, string>, RegExp][] = [
    [
      'a services file with a bad line',
      {
        readServices: async (path, variable) => {
          throw new FileConfigError(variable, `${path} line 1: ${SECRET}`, 'a service')
        },
      },
      { ISTIO_SERVICES_FILE: '/etc/secret', ISTIO_OUTBOUND_METHOD: 'explicit' },
      /settings.ISTIO_SERVICES_FILE: the file it names was refused \(the node agent's log says why\)/,
    ],
    [
      'init exits 2 quoting a file',
      { runCli: async () => ({ exitCode: 2, output: `sidecar-redirect: ISTIO_SERVICES_FILE="/x line 3: ${SECRET}" is not valid [E_CONFIG]` }) },
      {},
      /init in the pod's netns exited 2 \(E_CONFIG\); the node agent's log has its output/,
    ],
    [
      'init fails unexpectedly with a stack',
      { runCli: async () => ({ exitCode: 1, output: `Error: ENOENT ${SECRET}\n    at x` }) },
      {},
      /exited 1 \(an unexpected failure\); the node agent's log has its output/,
    ],
  ]
  for (const [name, io, settings, message] of rows) {
    const reply = await handleRequest({ env: POD, stdin: conf({ settings }) }, fakeIo(io))
    t.equal(reply.exitCode, 1, `${name}: refused`)
    t.match(JSON.parse(reply.stdout), { msg: message, details: '' }, `${name}: the message names the setting or the code`)
    t.notMatch(reply.stdout + reply.stderr, SECRET, `${name}: neither stdout nor stderr holds the file`)
    t.match(reply.log, SECRET, `${name}: the agent's log does`)
  }
  const verify = await handleRequest(
    { env: POD, stdin: conf() },
    fakeIo({ runCli: async (_netns, command) => ({ exitCode: command === 'init' ? 5 : 0, output: '- -A OUTPUT -j RETURN [E_VERIFY]' }) }),
  )
  t.match(JSON.parse(verify.stdout), { code: 105, details: /-A OUTPUT -j RETURN/ }, "a verify failure still names the pod's own rules")
})

t.test('the downward API annotations file is read as the kubelet writes it (Go-quoted values)', async t => {
  const text = [
    'kubernetes.io/config.seen="2024-01-01T00:00:00Z"',
    'sidecar-redirect.io/outbound-exclude-ports="80,443"',
    'multi="line one\\nline \\"two\\"\\t\\\\ \\x01 \\u00e9 é \\U0001f600"',
    '',
  ].join('\n')
  t.same(parseAnnotationsFile(text, 'V', '/p'), {
    'kubernetes.io/config.seen': '2024-01-01T00:00:00Z',
    'sidecar-redirect.io/outbound-exclude-ports': '80,443',
    multi: 'line one\nline "two"\t\\ \u0001 é é 😀',
  })
  t.equal(unquoteGo('"\\xc3\\xa9"'), 'é', '\\x bytes make up UTF-8 together')
  for (const bad of ['novalue', 'k=unquoted', 'k="open', 'k="a"b"', 'k="\\q"', 'k="\\u12"'])
    t.throws(() => parseAnnotationsFile(bad, 'V', '/p'), { exitCode: 2, message: /line 1 is not/ }, bad)
})
