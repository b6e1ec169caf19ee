// The injection module: for every workload kind, both modes and both layouts, with our stand-in proxy and with a
// foreign proxy image, the output is valid against Kubernetes' schemas, injecting twice changes nothing, uninject
// gives back the input, and the patch does exactly what inject returns. Then each refusal and warning.
import fastJsonPatch from 'fast-json-patch'
import t from 'tap'
import { inject, uninject } from '../../../src/inject/inject.js'
import { STATUS_ANNOTATION } from '../../../src/inject/settings.js'
import { transformObject } from '../../../src/inject/workloads.js'
import { KINDS, type Obj, podSpec, templateOf, unknownKeys } from '../../helpers/workloads.js'
import { parseInjectSettings } from '../../../src/settings/parse.js'

const { applyPatch, deepClone } = fastJsonPatch

const source = (env: Record<string, string> = {}, flags: Record<string, string> = {}) => ({ env, flags })
const FOREIGN = { ISTIO_INJECT_PROXY_IMAGE: 'docker.io/envoyproxy/envoy:v1.31.2', ISTIO_INJECT_PROXY_ARGS: '["-c","/etc/envoy/envoy.yaml"]' }

const names = (list: Obj[] | undefined): string[] => (list ?? []).map(c => c['name'])
const OURS = /^sidecar-redirect-/

for (const [kind, { make, model }] of Object.entries(KINDS)) {
  for (const mode of ['init', 'cni'] as const) {
    for (const layout of ['native', 'classic'] as const) {
      for (const [proxyName, proxyEnv] of [
        ['our stand-in proxy', {}],
        ['a foreign proxy image', FOREIGN],
      ] as const) {
        t.test(`${kind}, mode ${mode}, ${layout} layout, ${proxyName}`, async t => {
          const original = make(podSpec())
          const settings = source({ ISTIO_INJECT_MODE: mode, ISTIO_INJECT_LAYOUT: layout, ...proxyEnv })
          const result = transformObject(deepClone(original), 'inject', settings)
          t.same(result.refusals, [], 'not refused')
          const injected = result.object as Obj
          t.doesNotThrow(() => new model(injected as never).validate(), `a valid ${kind} by Kubernetes' schema`)
          const spec = templateOf(injected)['spec']
          const ours = [...spec.initContainers, ...spec.containers].filter((c: Obj) => OURS.test(c['name']))
          t.same(unknownKeys('Container', ours), [], "every field of our containers is a field of Kubernetes' Container")
          const first = mode === 'init' ? 'sidecar-redirect-init' : 'sidecar-redirect-validate'
          const hold = proxyName === 'a foreign proxy image' ? ['sidecar-redirect-hold'] : []
          t.same(
            [names(spec.initContainers), names(spec.containers)],
            layout === 'native'
              ? [[first, 'sidecar-redirect-proxy', 'migrate'], ['app']]
              : [
                  ['migrate', first],
                  ['sidecar-redirect-proxy', ...hold, 'app'],
                ],
            layout === 'native'
              ? 'native: ours first, the proxy before the user init containers'
              : 'classic: our init container last, the proxy (and its hold) before the app',
          )
          const proxy = ours.find((c: Obj) => c['name'] === 'sidecar-redirect-proxy')
          t.equal(proxy.restartPolicy, layout === 'native' ? 'Always' : undefined, 'restartPolicy Always only as a native sidecar')
          t.same(
            proxy.startupProbe?.tcpSocket,
            layout === 'native' ? { port: 5001 } : undefined,
            'a TCP startup probe on the proxy port, native only',
          )
          t.same(proxy.readinessProbe.tcpSocket, { port: 5001 }, 'a TCP readiness probe on the proxy port')
          t.match(
            proxy.securityContext,
            { runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            'the proxy: UID 1337, every capability dropped',
          )
          t.notOk(proxy.securityContext.capabilities.add, 'and none added')
          if (proxyName === 'a foreign proxy image') {
            t.same(
              [proxy.image, proxy.command, proxy.args, proxy.env],
              [FOREIGN.ISTIO_INJECT_PROXY_IMAGE, undefined, ['-c', '/etc/envoy/envoy.yaml'], undefined],
            )
            t.notMatch(JSON.stringify(proxy), /\/app\/entrypoint|ISTIO_/, 'the foreign proxy needs nothing of ours')
          }
          const capture = ours.find((c: Obj) => c['name'] === first)
          t.match(
            capture.securityContext.capabilities,
            mode === 'init' ? { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } : { drop: ['ALL'] },
            mode === 'init' ? 'init: NET_ADMIN and NET_RAW only' : 'validate: no capability',
          )
          if (mode === 'cni') {
            t.notMatch(JSON.stringify(spec), /NET_ADMIN/, 'mode cni: NET_ADMIN nowhere in the pod')
            t.equal(templateOf(injected)['metadata'].annotations['sidecar-redirect.io/capture'], 'enabled', "the CNI plugin's opt-in")
          }

          t.same(applyPatch(deepClone(original), deepClone(result.ops), true).newDocument, injected, 'the patch makes exactly the output')
          const again = transformObject(deepClone(injected), 'inject', settings)
          t.same([again.ops, again.object], [[], injected], 'inject(inject(x)) = inject(x): no patch the second time')
          const back = transformObject(deepClone(injected), 'uninject', settings)
          t.same(back.object, original, 'uninject(inject(x)) = x')
          t.strictSame(JSON.stringify(back.object), JSON.stringify(original), '... down to the order of keys')
        })
      }
    }
  }
}

t.test('a template with no metadata, annotations, init containers or volumes comes back without them', async t => {
  const bare = { spec: { containers: [{ name: 'app', image: 'x' }] } }
  const result = inject(bare, source({ ISTIO_INJECT_MODE: 'cni' }))
  t.equal(result.kind, 'injected')
  if (result.kind !== 'injected') return
  t.ok((result.template['metadata'] as Obj)['annotations'][STATUS_ANNOTATION])
  const back = uninject(result.template)
  t.strictSame(back.kind === 'uninjected' && back.template, bare, 'the parents injection created are gone again')
  const empty = { metadata: { annotations: {} }, spec: { initContainers: [], containers: [{ name: 'app', image: 'x' }] } }
  const round = inject(empty, source())
  t.strictSame(
    round.kind === 'injected' && uninject(round.template).kind === 'uninjected' && (uninject(round.template) as Obj)['template'],
    empty,
    'empty ones the user wrote stay',
  )
})

t.test('other settings replace what an earlier injection added; ours is never doubled', async t => {
  const first = inject(KINDS['Pod']!.make(podSpec()), source())
  if (first.kind !== 'injected') return t.fail(first.kind)
  const second = inject(first.template, source({ ISTIO_PROXY_PORT: '15001', ISTIO_INJECT_LAYOUT: 'classic' }))
  if (second.kind !== 'injected') return t.fail(second.kind)
  const spec = second.template['spec'] as Obj
  t.same(
    [names(spec.initContainers), names(spec.containers)],
    [
      ['migrate', 'sidecar-redirect-init'],
      ['sidecar-redirect-proxy', 'app'],
    ],
  )
  t.match(spec.initContainers[1].env, [{ name: 'ISTIO_PROXY_PORT', value: '15001' }])
  const back = uninject(second.template)
  t.same(back.kind === 'uninjected' && back.template, KINDS['Pod']!.make(podSpec()), 'and uninject still gives back the original')
})

t.test('layout auto: native from Kubernetes 1.29, classic before, native when no version is given', async t => {
  for (const [version, layout] of [
    ['1.28', 'classic'],
    ['v1.28.15', 'classic'],
    ['1.29', 'native'],
    ['1.33.1-eks-1', 'native'],
    ['', 'native'],
  ] as const) {
    const result = inject(KINDS['Pod']!.make(podSpec()), source({ ISTIO_INJECT_KUBE_VERSION: version }))
    t.equal(result.kind === 'injected' && result.layout, layout, `${JSON.stringify(version)}: ${layout}`)
  }
})

t.test('settings only the init container reads reach its env, and only those that differ from the defaults', async t => {
  const result = inject(
    KINDS['Pod']!.make(podSpec()),
    source({ ISTIO_OUTBOUND_EXCLUDE_PORTS: '22', ISTIO_LOG_FORMAT: 'text' }, { outboundExcludeCidrs: '169.254.169.254/32' }),
  )
  if (result.kind !== 'injected') return t.fail(result.kind)
  t.same((result.template['spec'] as Obj).initContainers[0].env, [
    { name: 'ISTIO_PROXY_PORT', value: '5001' },
    { name: 'ISTIO_PROXY_UID', value: '1337' },
    { name: 'ISTIO_OUTBOUND_METHOD', value: 'uid' },
    { name: 'ISTIO_OUTBOUND_EXCLUDE_PORTS', value: '22' },
    { name: 'ISTIO_OUTBOUND_EXCLUDE_CIDRS', value: '169.254.169.254/32' },
  ])
})

t.test("a pod's annotations set what the allow-list lets them, named as the annotation when refused", async t => {
  const withAnnotations = (annotations: Record<string, string>) => {
    const pod = KINDS['Pod']!.make(podSpec())
    pod['metadata'].annotations = annotations
    return pod
  }
  const ok = inject(
    withAnnotations({
      'sidecar-redirect.io/outbound-exclude-ports': '5432',
      'inject.sidecar-redirect.io/proxy-image': 'registry.example/proxy:3',
      'inject.sidecar-redirect.io/inject-layout': 'classic',
    }),
    source(),
  )
  if (ok.kind !== 'injected') return t.fail(JSON.stringify(ok))
  const spec = ok.template['spec'] as Obj
  t.match(spec.initContainers.at(-1).env, [{}, {}, {}, { name: 'ISTIO_OUTBOUND_EXCLUDE_PORTS', value: '5432' }])
  t.equal(spec.containers[0].image, 'registry.example/proxy:3')
  t.equal(ok.layout, 'classic')
  for (const [annotations, field, message] of [
    [{ 'sidecar-redirect.io/backend': 'nftables' }, 'sidecar-redirect.io/backend', /sets ISTIO_BACKEND, which the operator does not let pods set/],
    [{ 'inject.sidecar-redirect.io/inject-image': 'evil:1' }, 'inject.sidecar-redirect.io/inject-image', /names no setting a pod may set/],
    [{ 'sidecar-redirect.io/bogus': '1' }, 'sidecar-redirect.io/bogus', /names no setting/],
    [{ 'inject.sidecar-redirect.io/outbound-exclude-ports': '1' }, 'inject.sidecar-redirect.io/outbound-exclude-ports', /names no setting/],
    [
      { 'sidecar-redirect.io/outbound-exclude-ports': '99999' },
      'sidecar-redirect.io/outbound-exclude-ports',
      /"99999" is not valid: expected comma-separated ports/,
    ],
    [{ 'inject.sidecar-redirect.io/proxy-probe': '{"x":1}' }, 'inject.sidecar-redirect.io/proxy-probe', /is not valid: expected tcp/],
    [{ 'inject.sidecar-redirect.io/inject': 'yes' }, 'inject.sidecar-redirect.io/inject', /expected enabled or disabled/],
  ] as const) {
    const result = inject(withAnnotations(annotations), source())
    t.equal(result.kind, 'refused', JSON.stringify(annotations))
    if (result.kind === 'refused') {
      t.equal(result.refusals[0]!.field, `metadata.annotations[${JSON.stringify(field)}]`)
      t.match(result.refusals[0]!.message, message)
    }
  }
  const operator = inject(withAnnotations({ 'sidecar-redirect.io/backend': 'nftables' }), source({ ISTIO_INJECT_ANNOTATIONS: 'backend' }))
  t.equal(operator.kind, 'injected', 'the operator may allow more')
  t.throws(
    () => parseInjectSettings({ ISTIO_INJECT_MODE: 'cni', ISTIO_INJECT_ANNOTATIONS: 'proxy-image,backend' }),
    { message: /ISTIO_INJECT_ANNOTATIONS=.*in mode cni, no setting only the node's operator sets \(backend: ISTIO_BACKEND/ },
    "... but not in mode cni what the node's plugin refuses as an annotation",
  )
  t.doesNotThrow(() => parseInjectSettings({ ISTIO_INJECT_MODE: 'cni', ISTIO_INJECT_ANNOTATIONS: 'proxy-image,outbound-exclude-ports' }))
  const none = inject(withAnnotations({ 'inject.sidecar-redirect.io/proxy-image': 'x:1' }), source({ ISTIO_INJECT_ANNOTATIONS: '' }))
  t.equal(none.kind, 'refused', '... or nothing')
  const off = inject(withAnnotations({ 'inject.sidecar-redirect.io/inject': 'disabled' }), source())
  t.same([off.kind, off.kind === 'skipped' && off.ops], ['skipped', []], 'a pod that opts out is left as it is')
  const labelled = KINDS['Pod']!.make(podSpec())
  labelled['metadata'].labels['sidecar-redirect.io/inject'] = 'disabled'
  t.equal(inject(labelled, source()).kind, 'skipped', '... by annotation or by the label the webhook selects on')
})

const refusalsOf = (object: Obj, env: Record<string, string> = {}) =>
  transformObject(object, 'inject', source(env)).refusals.map(r => `${r.kind} ${r.field}`)

t.test('refusals name the field: kube-system, the host network, ourselves, an app on the proxy UID or GID', async t => {
  const deployment = (change: (o: Obj) => void) => {
    const o = KINDS['Deployment']!.make(podSpec())
    change(o)
    return o
  }
  t.same(refusalsOf(deployment(o => (o['metadata'].namespace = 'kube-system'))), ['kube-system metadata.namespace'])
  t.same(refusalsOf(deployment(o => (o['spec'].template.spec.hostNetwork = true))), ['host-network spec.template.spec.hostNetwork'])
  t.same(refusalsOf(deployment(o => (o['spec'].template.metadata.labels['app.kubernetes.io/name'] = 'sidecar-redirect'))), [
    'itself spec.template.metadata.labels["app.kubernetes.io/name"]',
  ])
  t.same(refusalsOf(deployment(o => (o['spec'].template.spec.containers[0].securityContext.runAsUser = 1337))), [
    'proxy-uid spec.template.spec.containers[0].securityContext.runAsUser',
  ])
  t.same(
    refusalsOf(deployment(o => (o['spec'].template.spec.initContainers[0].securityContext.runAsUser = 1337))),
    ['proxy-uid spec.template.spec.initContainers[0].securityContext.runAsUser'],
    'init containers too: in the native layout they are captured like the app',
  )
  t.same(
    refusalsOf(
      deployment(o => {
        delete o['spec'].template.spec.containers[0].securityContext.runAsUser
        o['spec'].template.spec.securityContext.runAsUser = 1337
      }),
    ),
    ['proxy-uid spec.template.spec.securityContext.runAsUser'],
    "the pod's default UID, where a container sets none",
  )
  t.same(
    refusalsOf(
      deployment(o => (o['spec'].template.spec.containers[0].securityContext.runAsUser = 1337)),
      { ISTIO_OUTBOUND_METHOD: 'mark' },
    ),
    [],
    'with mark the UID is no exemption',
  )
  t.same(
    refusalsOf(
      deployment(o => (o['spec'].template.spec.containers[0].securityContext.runAsGroup = 3000)),
      { ISTIO_PROXY_GID: '3000' },
    ),
    ['proxy-uid spec.template.spec.containers[0].securityContext.runAsGroup'],
  )
  t.same(refusalsOf(deployment(o => o['spec'].template.spec.containers.push({ name: 'sidecar-redirect-proxy', image: 'x' }))), [
    'reserved-name spec.template.spec.containers[1].name',
  ])
  t.same(
    refusalsOf(deployment(o => o['spec'].template.spec.initContainers.unshift({ name: 'sidecar-redirect', image: 'x' }))),
    ['reserved-name spec.template.spec.initContainers[0].name'],
    "the chart's templates' init container: already captured",
  )
  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: [KINDS['Pod']!.make(podSpec()), deployment(o => (o['spec'].template.spec.hostNetwork = true))],
  }
  const listed = transformObject(list, 'inject', source())
  t.same(
    [listed.refusals.map(r => `${r.label}: ${r.field}`), listed.ops],
    [['items[1]: Deployment shop/web: items[1].spec.template.spec.hostNetwork'], []],
    'in a List: the item named, and nothing changed',
  )
})

t.test('methods the proxy image cannot serve are refused with the reason and the way out', async t => {
  const pod = () => KINDS['Pod']!.make(podSpec())
  for (const env of [
    { ISTIO_OUTBOUND_METHOD: 'mark', ...FOREIGN },
    { ISTIO_OUTBOUND_METHOD: 'cgroup', ...FOREIGN },
    { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ...FOREIGN },
  ]) {
    const result = inject(pod(), source(env))
    t.equal(result.kind, 'refused', JSON.stringify(env))
    if (result.kind === 'refused')
      t.match(result.refusals[0]!.message, /Only this project's agent \(entrypoint run\) can start the proxy so: build your proxy's image FROM/)
  }
  const agentImage = inject(pod(), source({ ISTIO_OUTBOUND_METHOD: 'mark', ...FOREIGN, ISTIO_INJECT_PROXY_AGENT: 'true' }))
  t.match(agentImage.kind === 'refused' && agentImage.refusals[0]!.message, /needs ISTIO_INJECT_PROXY_COMMAND/)
  for (const env of [{ ISTIO_OUTBOUND_METHOD: 'mark' }, { ISTIO_OUTBOUND_METHOD: 'cgroup' }, { ISTIO_INJECT_HELPER_UID: '1337' }]) {
    const result = inject(pod(), source({ ISTIO_INJECT_MODE: 'cni', ...env }))
    t.equal(result.kind, 'refused', `mode cni, ${JSON.stringify(env)}`)
  }
  t.equal(
    inject(pod(), source({ ISTIO_INJECT_MODE: 'cni', ISTIO_OUTBOUND_METHOD: 'cgroup', ISTIO_CLASSIFIER_SOCKET: '/run/sr/classifier.sock' })).kind,
    'injected',
  )
  const capture = pod()
  capture['metadata'].annotations['sidecar-redirect.io/capture'] = 'disabled'
  t.match(refusalsOf(capture, { ISTIO_INJECT_MODE: 'cni' }), ['annotation metadata.annotations["sidecar-redirect.io/capture"]'])
})

t.test('with our agent: mark and cgroup get exactly what they need, and uninject takes the volumes away again', async t => {
  const cases = [
    [{ ISTIO_OUTBOUND_METHOD: 'mark' }, 0, ['NET_ADMIN', 'SETUID', 'SETGID', 'SETPCAP'], []],
    [{ ISTIO_OUTBOUND_METHOD: 'cgroup' }, 0, ['SETUID', 'SETGID', 'SETPCAP'], ['sidecar-redirect-net-cls']],
    [{ ISTIO_OUTBOUND_METHOD: 'cgroup', ISTIO_CLASSIFIER_SOCKET: '/run/sr/classifier.sock' }, 1337, undefined, ['sidecar-redirect-classifier']],
  ] as const
  for (const [env, uid, add, volumes] of cases) {
    const original = KINDS['Deployment']!.make(podSpec())
    const result = transformObject(deepClone(original), 'inject', source(env))
    const spec = templateOf(result.object as Obj)['spec']
    const proxy = spec.initContainers[1]
    t.same([proxy.command, proxy.args.slice(0, 2)], [['/app/entrypoint'], ['run', '--']], `${JSON.stringify(env)}: the agent starts the proxy`)
    t.same([proxy.securityContext.runAsUser, proxy.securityContext.capabilities.add], [uid, add])
    t.same(names(spec.volumes), ['data', ...volumes])
    t.same(unknownKeys('Volume', spec.volumes), [])
    t.doesNotThrow(() => new KINDS['Deployment']!.model(result.object as never).validate())
    t.same(transformObject(result.object, 'uninject', source()).object, original)
  }
})

t.test('warnings: an app container that keeps NET_RAW or has NET_ADMIN; refused when the setting says so', async t => {
  const pod = (sc: Obj) => {
    const p = KINDS['Pod']!.make(podSpec())
    p['spec'].containers[0].securityContext = sc
    return p
  }
  for (const [sc, expected] of [
    [{ capabilities: { drop: ['ALL'] } }, []],
    [{ capabilities: { drop: ['NET_RAW'] } }, []],
    [{ capabilities: { drop: ['cap_net_raw'] } }, []],
    [{}, ['spec.containers[0].securityContext.capabilities leaves container "app" NET_RAW']],
    [{ capabilities: { drop: ['ALL'], add: ['NET_RAW'] } }, ['spec.containers[0].securityContext.capabilities leaves container "app" NET_RAW']],
    [
      { capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } },
      ['spec.containers[0].securityContext.capabilities.add gives container "app" NET_ADMIN'],
    ],
    [
      { privileged: true, capabilities: { drop: ['ALL'] } },
      [
        'spec.containers[0].securityContext.privileged gives container "app" NET_ADMIN',
        'spec.containers[0].securityContext.capabilities leaves container "app" NET_RAW',
      ],
    ],
  ] as const) {
    const result = inject(pod(sc), source())
    t.equal(result.kind, 'injected', JSON.stringify(sc))
    t.same(
      result.warnings.map(w => `${w.field} ${w.message}`.replace(/:.*$/, '')),
      expected,
      `${JSON.stringify(sc)}: ${expected.length} warning(s)`,
    )
    const refused = inject(pod(sc), source({ ISTIO_INJECT_APP_CAPABILITIES: 'refuse' }))
    t.equal(refused.kind, expected.length === 0 ? 'injected' : 'refused', '... refused under ISTIO_INJECT_APP_CAPABILITIES=refuse')
  }
  const job = inject(templateOf(KINDS['Job']!.make(podSpec())), source({ ISTIO_INJECT_LAYOUT: 'classic' }))
  t.match(job.warnings, [{ field: 'spec.restartPolicy', message: /never completes/ }], 'a classic proxy in a Job: it would never complete')
  t.same(inject(templateOf(KINDS['Job']!.make(podSpec())), source()).warnings, [], '... not as a native sidecar')
})

t.test('hostile input: a forged status, malformed templates, prototype keys', async t => {
  const pod = KINDS['Pod']!.make(podSpec())
  pod['metadata'].annotations[STATUS_ANNOTATION] = JSON.stringify({
    version: '0.1.0',
    digest: 'x',
    initContainers: [],
    containers: ['app'],
    volumes: [],
    annotations: [],
    created: [],
  })
  for (const outcome of [uninject(pod), inject(pod, source())]) {
    t.match(
      outcome,
      { kind: 'refused', refusals: [{ field: `metadata.annotations[${JSON.stringify(STATUS_ANNOTATION)}]` }] },
      'a status naming the app: refused, the app kept',
    )
  }
  for (const [template, field] of [
    [null, ''],
    [{ spec: {} }, 'spec.containers'],
    [{ spec: { containers: [{ image: 'x' }] } }, 'spec.containers[0]'],
    [{ spec: { containers: [{ name: 'a' }], initContainers: {} } }, 'spec.initContainers'],
    [{ metadata: { annotations: { a: 1 } }, spec: { containers: [{ name: 'a' }] } }, 'metadata.annotations'],
  ] as const) {
    t.match(
      inject(template as never, source()),
      { kind: 'refused', refusals: [{ kind: 'malformed', field }] },
      `malformed: ${JSON.stringify(template)}`,
    )
  }
  const proto = JSON.parse('{"metadata":{"annotations":{"__proto__":{"polluted":"yes"}}},"spec":{"containers":[{"name":"a","image":"x"}]}}')
  t.equal(inject(proto, source()).kind, 'refused', 'an annotation that is not a string is refused')
  const protoKey = JSON.parse('{"metadata":{"annotations":{"__proto__":"x"}},"spec":{"containers":[{"name":"a","image":"x"}]}}')
  const result = inject(protoKey, source())
  t.equal(result.kind, 'injected')
  t.equal(({} as Obj)['polluted'], undefined, 'nothing reached Object.prototype')
  t.same(result.kind === 'injected' && uninject(result.template).kind === 'uninjected' && (uninject(result.template) as Obj)['template'], protoKey)
})

t.test("the injector's image tag is this release: package.json's version and the chart's appVersion", async t => {
  const { readFileSync } = await import('node:fs')
  const { VERSION } = await import('../../../src/settings/inject-options.js')
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  const chart = readFileSync(new URL('../../../charts/sidecar-redirect/Chart.yaml', import.meta.url), 'utf8')
  t.equal(VERSION, pkg.version)
  t.match(chart, `appVersion: "${VERSION}"`)
})

t.test("resources: ours by default small, the proxy's none unless set; bad ones refused naming the setting", async t => {
  const spec = (env: Record<string, string>) => {
    const result = inject(KINDS['Pod']!.make(podSpec()), source(env))
    return result.kind === 'injected' ? (result.template['spec'] as Obj) : {}
  }
  const defaults = spec({})
  t.same(defaults.initContainers[0].resources, { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } })
  t.notOk(defaults.initContainers[1].resources, 'no resources for the proxy unless set')
  const set = spec({ ISTIO_INJECT_RESOURCES: '', ISTIO_INJECT_PROXY_RESOURCES: '{"limits":{"memory":"1Gi","cpu":2}}' })
  t.same([set.initContainers[0].resources, set.initContainers[1].resources], [undefined, { limits: { memory: '1Gi', cpu: '2' } }])
  for (const bad of ['{"limits":{"memory":"lots"}}', '{"limit":{}}', '[]', '{']) {
    t.throws(
      () => inject(KINDS['Pod']!.make(podSpec()), source({ ISTIO_INJECT_PROXY_RESOURCES: bad })),
      /ISTIO_INJECT_PROXY_RESOURCES=.* is not valid: expected a JSON Kubernetes ResourceRequirements/,
    )
  }
})
