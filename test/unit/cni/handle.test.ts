// The CNI protocol without root or a runtime: config decisions, the wire format, and which command runs in the
// netns for each request, through a recording fake of the agent's reach into pods.
import t from 'tap'
import { decidePod, parseNetConf } from '../../../src/cni/config.js'
import { handleRequest, type AgentIo, type CliCommand } from '../../../src/cni/handle.js'
import { decodeRequest, encodeReply } from '../../../src/cni/wire.js'

const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'sidecar-redirect', ...extra })
const annotated = (annotations: Record<string, string>, extra: Record<string, unknown> = {}) =>
  conf({ runtimeConfig: { 'io.kubernetes.cri.pod-annotations': annotations }, ...extra })

t.test('who is captured: captureAll, the capture annotation, and excluded namespaces', async t => {
  const rows: [string, string, string, boolean][] = [
    ['defaults: captureAll false', conf(), 'K8S_POD_NAMESPACE=shop', false],
    ['captureAll true', conf({ captureAll: true }), 'K8S_POD_NAMESPACE=shop', true],
    ['annotation enabled overrides captureAll false', annotated({ 'sidecar-redirect.io/capture': 'enabled' }), 'K8S_POD_NAMESPACE=shop', true],
    [
      'annotation disabled overrides captureAll true where the allow-list names capture',
      annotated({ 'sidecar-redirect.io/capture': 'disabled' }, { captureAll: true, allowedAnnotations: ['capture'] }),
      'K8S_POD_NAMESPACE=shop',
      false,
    ],
    ['annotation disabled with captureAll false', annotated({ 'sidecar-redirect.io/capture': 'disabled' }), 'K8S_POD_NAMESPACE=shop', false],
    [
      'kube-system is excluded by default, even annotated',
      annotated({ 'sidecar-redirect.io/capture': 'enabled' }, { captureAll: true }),
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system',
      false,
    ],
    ['excludeNamespaces replaces the default', conf({ captureAll: true, excludeNamespaces: ['batch'] }), 'K8S_POD_NAMESPACE=kube-system', true],
  ]
  for (const [name, stdin, args, captured] of rows) t.equal(decidePod(parseNetConf(stdin), args).captured, captured, name)
})

t.test('settings, then the allowed annotations, become the ISTIO_* environment, each named by where it was written', async t => {
  const decision = decidePod(
    parseNetConf(
      annotated(
        { 'sidecar-redirect.io/outbound-exclude-ports': '9090', other: 'x' },
        {
          captureAll: true,
          settings: { ISTIO_PROXY_PORT: '15001', ISTIO_OUTBOUND_EXCLUDE_PORTS: '1' },
          allowedAnnotations: ['outbound-exclude-ports'],
        },
      ),
    ),
    '',
  )
  t.match(decision, { captured: true, env: { ISTIO_PROXY_PORT: '15001', ISTIO_OUTBOUND_EXCLUDE_PORTS: '9090' } })
  t.same(decision.captured && [...decision.sources], [
    ['ISTIO_PROXY_PORT', 'settings.ISTIO_PROXY_PORT'],
    ['ISTIO_OUTBOUND_EXCLUDE_PORTS', 'annotation sidecar-redirect.io/outbound-exclude-ports'],
  ])
})

t.test('a config that is refused says which field and why, with the spec code', async t => {
  const rows: [string, number, RegExp][] = [
    ['{', 6, /not JSON/],
    [conf({ cniVersion: '0.4.0' }), 1, /cniVersion "0.4.0" is not supported/],
    [conf({ settings: { ISTIO_PROXY_PORT: 15001 } }), 7, /settings\.ISTIO_PROXY_PORT must be a string/],
    [conf({ settings: { HOME: '/' } }), 7, /settings\.HOME is not a setting/],
    [conf({ captureAll: 'yes' }), 7, /captureAll must be true or false/],
    [conf({ excludeNamespaces: 'kube-system' }), 7, /excludeNamespaces must be a list/],
  ]
  for (const [stdin, code, message] of rows) t.throws(() => parseNetConf(stdin), { code, message }, message.source)
})

t.test('the wire format: NUL-ended variables, then stdin; only CNI variables are taken', async t => {
  t.same(decodeRequest(Buffer.from('CNI_COMMAND=ADD\0CNI_ARGS=a=b;c=d\0\0{"x":1}')), {
    env: { CNI_COMMAND: 'ADD', CNI_ARGS: 'a=b;c=d' },
    stdin: '{"x":1}',
  })
  t.equal(decodeRequest(Buffer.from('PATH=/bin\0\0{}')), undefined, 'another variable')
  t.equal(decodeRequest(Buffer.from('CNI_COMMAND=ADD')), undefined, 'no end of the variables')
  t.equal(encodeReply({ exitCode: 1, stdout: 'é\n', stderr: 'log' }).toString(), '1 3\né\nlog', 'the stdout length is in bytes')
})

const fakeIo = (overrides: Partial<AgentIo>) => {
  const ran: string[] = []
  const runCli = overrides.runCli ?? (async () => ({ exitCode: 0, output: '' }))
  const io: AgentIo = {
    inspectNetns: async () => ({ kind: 'netns', id: '4:4026532000' }),
    ownedRules: async () => [],
    missingTools: async () => [],
    readServices: async () => [],
    keep: async pod => void ran.push(`keep ${pod.netns}`),
    forget: async (container, netns) => void ran.push(`forget ${container} ${netns}`),
    ...overrides,
    runCli: (netns, command, env) => {
      ran.push(command)
      return runCli(netns, command, env)
    },
  }
  return { io, ran }
}

const POD = { CNI_CONTAINERID: 'c', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop' }

t.test('each command runs what it must in the netns, and nothing else', async t => {
  const prevResult = { cniVersion: '1.1.0', ips: [{ address: '198.19.0.2/24' }] }
  // name, env, stdin, io, what ran in order (commands, and the pods kept and forgotten), exit code, stdout
  type Row = [string, Record<string, string>, string, Partial<AgentIo>, (CliCommand | `${'keep' | 'forget'} ${string}`)[], number, RegExp | string]
  const rows: Row[] = [
    [
      'ADD of a captured pod runs init, passes prevResult on, and keeps the pod',
      { ...POD, CNI_COMMAND: 'ADD' },
      conf({ captureAll: true, prevResult }),
      {},
      ['init', 'keep /run/netns/p'],
      0,
      `${JSON.stringify(prevResult)}\n`,
    ],
    [
      "ADD naming the agent's own netns runs nothing and is code 4",
      { ...POD, CNI_COMMAND: 'ADD' },
      conf({ captureAll: true }),
      { inspectNetns: async () => ({ kind: 'own', whose: "the node agent's own" }) },
      [],
      1,
      /"code":4,"msg":"CNI_NETNS=\\"\/run\/netns\/p\\" is the node agent's own network namespace, not a pod's: refusing to change it"/,
    ],
    [
      'ADD naming a directory runs nothing and is code 4',
      { ...POD, CNI_COMMAND: 'ADD' },
      conf({ captureAll: true }),
      { inspectNetns: async () => ({ kind: 'not-netns', what: 'a directory' }) },
      [],
      1,
      /"code":4,"msg":"CNI_NETNS=\\"\/run\/netns\/p\\" is a directory, not a network namespace"/,
    ],
    ['ADD of a pod not captured runs nothing', { ...POD, CNI_COMMAND: 'ADD' }, conf({ prevResult }), {}, [], 0, `${JSON.stringify(prevResult)}\n`],
    [
      'ADD whose init fails runs clean and answers 100 + its exit code',
      { ...POD, CNI_COMMAND: 'ADD' },
      conf({ captureAll: true }),
      { runCli: async () => ({ exitCode: 4, output: 'sidecar-redirect: refused [E_APPLY]' }) },
      ['init', 'clean'],
      1,
      /"code":104,"msg":".*exited 4 \(E_APPLY\)/,
    ],
    [
      'ADD without CNI_NETNS is code 4',
      { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0' },
      conf({ captureAll: true }),
      {},
      [],
      1,
      /"code":4,"msg":"CNI_NETNS must be set for ADD"/,
    ],
    ['CHECK of a captured pod runs verify', { ...POD, CNI_COMMAND: 'CHECK' }, conf({ captureAll: true }), {}, ['verify'], 0, ''],
    [
      'CHECK of a pod not captured with rules of ours is code 105',
      { ...POD, CNI_COMMAND: 'CHECK' },
      conf(),
      { ownedRules: async () => [':SIDECAR_OUTBOUND - [0:0]'] },
      [],
      1,
      /"code":105/,
    ],
    [
      'DEL forgets the pod and runs clean, even for a config ADD refused',
      { ...POD, CNI_COMMAND: 'DEL' },
      conf({ captureAll: true, settings: { ISTIO_PROXY_PORT: '0' } }),
      {},
      ['forget c /run/netns/p', 'clean'],
      0,
      '',
    ],
    [
      'DEL of a netns that is gone runs nothing',
      { ...POD, CNI_COMMAND: 'DEL' },
      conf(),
      { inspectNetns: async () => ({ kind: 'gone' }) },
      ['forget c /run/netns/p'],
      0,
      '',
    ],
    [
      'DEL of a netns the agent may not open runs nothing and succeeds',
      { ...POD, CNI_COMMAND: 'DEL' },
      conf({ captureAll: true }),
      { inspectNetns: async () => ({ kind: 'closed', why: 'EACCES' }) },
      ['forget c /run/netns/p'],
      0,
      '',
    ],
    ...(['a regular file', 'a directory'] as const).map(
      (what): Row => [
        `DEL of ${what} runs nothing and succeeds`,
        { ...POD, CNI_COMMAND: 'DEL' },
        conf({ captureAll: true }),
        { inspectNetns: async () => ({ kind: 'not-netns', what }) },
        ['forget c /run/netns/p'],
        0,
        '',
      ],
    ),
    [
      "DEL of the agent's own netns changes nothing and succeeds",
      { ...POD, CNI_COMMAND: 'DEL' },
      conf({ captureAll: true }),
      { inspectNetns: async () => ({ kind: 'own', whose: "PID 1's" }) },
      ['forget c /run/netns/p'],
      0,
      '',
    ],
    [
      'STATUS with a tool missing is code 50',
      { CNI_COMMAND: 'STATUS' },
      conf(),
      { missingTools: async () => ['nsenter'] },
      [],
      1,
      /"code":50,"msg":".*cannot run nsenter/,
    ],
    ['GC succeeds with nothing to say on stdout', { CNI_COMMAND: 'GC' }, conf(), {}, [], 0, ''],
    [
      'VERSION lists both versions',
      { CNI_COMMAND: 'VERSION' },
      conf({ cniVersion: '1.0.0' }),
      {},
      [],
      0,
      '{"cniVersion":"1.0.0","supportedVersions":["1.0.0","1.1.0"]}\n',
    ],
    ['an unknown command is code 4', { CNI_COMMAND: 'UPGRADE' }, conf(), {}, [], 1, /"code":4,"msg":"CNI_COMMAND=\\"UPGRADE\\" is not valid/],
  ]
  for (const [name, env, stdin, overrides, commands, exitCode, stdout] of rows) {
    const { io, ran } = fakeIo(overrides)
    const reply = await handleRequest({ env, stdin }, io)
    t.same({ exitCode: reply.exitCode, ran }, { exitCode, ran: commands }, `${name}: exit code and commands run`)
    if (typeof stdout === 'string') t.equal(reply.stdout, stdout, `${name}: stdout`)
    else t.match(reply.stdout, stdout, `${name}: stdout`)
  }
})
