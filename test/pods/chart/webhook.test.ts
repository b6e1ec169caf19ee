// The chart installs something: with the defaults, real Helm renders the admission webhook (Deployment, Service,
// PodDisruptionBudget, a Helm-made certificate, the MutatingWebhookConfiguration), valid against Kubernetes'
// schemas, passing `helm lint --strict`; the values reach the webhook as the injector's settings; and the rendered
// webhook container runs from the image with the chart's security context, serving the Helm-made certificate that
// the configuration's caBundle vouches for.
import { X509Certificate } from 'node:crypto'
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import fastJsonPatch, { type Operation } from 'fast-json-patch'
import t from 'tap'
import { runForStatus } from '../../../src/exec/processes.js'
import { readStatus } from '../../../src/privilege/status.js'
import { transformObject } from '../../../src/inject/workloads.js'
import { annotatableFlags } from '../../../src/settings/inject-options.js'
import { parseInjectSettings, parseWebhookSettings } from '../../../src/settings/parse.js'
import { helm, type K8sObject, objectsOf, validateObject } from '../../helpers/helm.js'
import { IMAGE, IMAGE_VALUES, NETWORK, podman, prepareNetwork, ROOT, runPodman, unique } from '../../helpers/podman.js'
import { KINDS, type Obj, podSpec, templateOf, unknownKeys } from '../../helpers/workloads.js'

const { applyPatch, deepClone } = fastJsonPatch
const CHART = `${ROOT}charts/sidecar-redirect`
const SCRATCH = mkdtempSync(`${tmpdir()}/sr-chart-webhook-`)
t.teardown(() => rmSync(SCRATCH, { recursive: true, force: true }))

const render = async (values: Obj = {}, namespace = 'mesh') => {
  const file = `${SCRATCH}/values-${Math.random().toString(36).slice(2)}.json`
  writeFileSync(file, JSON.stringify(values))
  const result = await helm('template', 'sr', CHART, '--namespace', namespace, '--kube-version', '1.33', '-f', file)
  if (result.exitCode !== 0) throw new Error(result.output)
  return objectsOf(result.output)
}

const find = (objects: K8sObject[], kind: string): Obj => objects.find(o => o.kind === kind) as Obj
const webhookContainer = (objects: K8sObject[]): Obj => find(objects, 'Deployment')['spec'].template.spec.containers[0]
const envOf = (container: Obj): Record<string, string> => Object.fromEntries(container['env'].map((e: Obj) => [e['name'], e['value']]))

t.test('helm lint --strict and `helm install --dry-run` with the defaults: the webhook and nothing else', async t => {
  const lint = await helm('lint', '--strict', CHART)
  t.equal(lint.exitCode, 0, lint.output)
  const install = await helm('install', '--dry-run=client', 'sr', CHART, '--namespace', 'mesh')
  t.equal(install.exitCode, 0, install.output)
  t.match(install.output, /kubectl label namespace <your namespace> sidecar-redirect\.io\/inject=enabled/, 'NOTES say what to do next')
  const objects = objectsOf(install.output.slice(install.output.indexOf('---'), install.output.indexOf('NOTES:')))
  t.same(objects.map(o => o.kind).sort(), ['Deployment', 'MutatingWebhookConfiguration', 'PodDisruptionBudget', 'Secret', 'Service'])
  for (const object of objects) t.doesNotThrow(() => validateObject(object), `${object.kind} is valid by Kubernetes' schema`)
})

t.test(
  'the MutatingWebhookConfiguration: failure policy, no side effects, reinvocation, selectors, and a CA that signs the served certificate',
  async t => {
    const objects = await render()
    const config = find(objects, 'MutatingWebhookConfiguration')
    const secret = find(objects, 'Secret')
    const keys = new Set(
      [
        ...readFileSync(`${ROOT}node_modules/kubernetes-models/_schemas/IoK8sApiAdmissionregistrationV1MutatingWebhook.mjs`, 'utf8').matchAll(
          /data\.([A-Za-z]+)/g,
        ),
      ].map(m => m[1]),
    )
    t.same(
      config['webhooks'].flatMap((w: Obj) => Object.keys(w).filter(k => !keys.has(k))),
      [],
      "every field of each webhook is a field of Kubernetes' MutatingWebhook",
    )
    t.equal(config['webhooks'].length, 2)
    for (const webhook of config['webhooks']) {
      t.match(webhook, {
        admissionReviewVersions: ['v1'],
        failurePolicy: 'Fail',
        sideEffects: 'None',
        reinvocationPolicy: 'IfNeeded',
        timeoutSeconds: 10,
        clientConfig: { service: { name: 'sr-webhook', namespace: 'mesh', path: '/inject', port: 443 } },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
      })
      t.same(
        webhook.namespaceSelector.matchExpressions[0],
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'mesh'] },
        `${webhook.name}: never kube-system or its own namespace`,
      )
    }
    const [byNamespace, byPod] = config['webhooks']
    t.same(
      [byNamespace.namespaceSelector.matchExpressions[1], byNamespace.objectSelector.matchExpressions],
      [
        { key: 'sidecar-redirect.io/inject', operator: 'In', values: ['enabled'] },
        [{ key: 'sidecar-redirect.io/inject', operator: 'NotIn', values: ['disabled'] }],
      ],
      'a labelled namespace, less the pods that opt out',
    )
    t.same(
      byPod.objectSelector.matchExpressions,
      [{ key: 'sidecar-redirect.io/inject', operator: 'In', values: ['enabled'] }],
      'or a pod that opts in',
    )
    t.same(
      [byNamespace.clientConfig.service.path, byPod.clientConfig.service.path],
      ['/inject', '/inject/opt-in'],
      'the pod webhook asks the webhook to inject only pods that opt in themselves',
    )
    const byAnnotation = find(await render({ webhook: { podAnnotationOptIn: true } }), 'MutatingWebhookConfiguration')['webhooks'][1]
    t.same(
      byAnnotation.objectSelector.matchExpressions,
      [{ key: 'sidecar-redirect.io/inject', operator: 'NotIn', values: ['disabled'] }],
      'podAnnotationOptIn: every pod not opted out reaches /inject/opt-in, which reads the annotation',
    )
    const deployment = find(objects, 'Deployment')
    t.match(deployment['spec'].template.metadata.labels, { 'sidecar-redirect.io/inject': 'disabled' }, 'the webhook never gets a proxy itself')
    const ca = new X509Certificate(Buffer.from(config['webhooks'][0].clientConfig.caBundle, 'base64'))
    const cert = new X509Certificate(Buffer.from(secret['data']['tls.crt'], 'base64'))
    t.ok(cert.verify(ca.publicKey), "the Secret's certificate is signed by the caBundle's CA")
    t.equal(cert.checkHost('sr-webhook.mesh.svc'), 'sr-webhook.mesh.svc', 'for the name the API server calls')
    t.equal(secret['data']['ca.crt'], config['webhooks'][0].clientConfig.caBundle)

    const managed = await render({ webhook: { certManager: { enabled: true } } })
    t.notOk(
      managed.some(o => o.kind === 'Secret'),
      'cert-manager: no Helm-made Secret',
    )
    const certificate = find(managed, 'Certificate')
    t.match(certificate, {
      apiVersion: 'cert-manager.io/v1',
      spec: { secretName: 'sr-webhook-tls', dnsNames: ['sr-webhook.mesh.svc', 'sr-webhook.mesh.svc.cluster.local'] },
    })
    t.match(find(managed, 'Issuer'), { spec: { selfSigned: {} } })
    const injected = find(managed, 'MutatingWebhookConfiguration')
    t.same(injected['metadata'].annotations, { 'cert-manager.io/inject-ca-from': 'mesh/sr-webhook' }, "cert-manager's cainjector fills in the CA")
    t.notOk(injected['webhooks'][0].clientConfig.caBundle)
    const issued = await render({ webhook: { certManager: { enabled: true, issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer' } } } })
    t.notOk(
      issued.some(o => o.kind === 'Issuer'),
      'an issuer of your own: none of ours',
    )
    t.same(find(issued, 'Certificate')['spec'].issuerRef, { name: 'corp-ca', kind: 'ClusterIssuer' })
    t.same(
      (await render({ webhook: { enabled: false } })).map(o => o.kind),
      [],
      'webhook.enabled=false renders nothing',
    )
  },
)

t.test("the values reach the webhook as the injector's settings, and it injects what they say", async t => {
  const values = {
    proxy: {
      image: 'docker.io/envoyproxy/envoy:v1.31.2',
      args: ['-c', '/etc/envoy/envoy.yaml'],
      port: 15001,
      probe: { httpGet: { path: '/ready', port: 15021 } },
      readOnlyRootFilesystem: false,
      nativeSidecar: false,
      readyTimeoutSeconds: 9,
    },
    cni: { enabled: true, validateRunAsUser: 4242 },
    webhook: { appCapabilities: 'refuse', annotations: ['proxy-image', 'outbound-exclude-ports'], timeoutSeconds: 7, replicas: 1 },
    outbound: { excludePorts: [22] },
    image: { repository: 'registry.example/sr', tag: '9.9.9', pullPolicy: 'Always' },
    resources: { init: { requests: { cpu: '5m' } }, proxy: { limits: { memory: '256Mi' } } },
  }
  const objects = await render(values)
  t.notOk(
    objects.some(o => o.kind === 'PodDisruptionBudget'),
    'one replica: no disruption budget',
  )
  const env = envOf(webhookContainer(objects))
  t.match(env, {
    ISTIO_INJECT_IMAGE: 'registry.example/sr:9.9.9',
    ISTIO_INJECT_PULL_POLICY: 'Always',
    ISTIO_INJECT_MODE: 'cni',
    ISTIO_INJECT_LAYOUT: 'classic',
    ISTIO_INJECT_KUBE_VERSION: 'v1.33',
    ISTIO_INJECT_PROXY_PROBE: '{"httpGet":{"path":"/ready","port":15021}}',
    ISTIO_INJECT_HELPER_UID: '4242',
    // CNI mode: the capture settings are the node's allow-list, not webhook.annotations (see the test below).
    ISTIO_INJECT_ANNOTATIONS: 'proxy-image',
    ISTIO_WEBHOOK_REQUEST_SECONDS: '7',
    ISTIO_OUTBOUND_EXCLUDE_PORTS: '22',
  })
  t.doesNotThrow(() => parseInjectSettings(env), 'every value parses as the injector reads it')
  t.match(
    parseWebhookSettings(envOf(webhookContainer(await render()))),
    { maxBytes: 3145728, requestSeconds: 10, certCheckSeconds: 10 },
    'the defaults, as the webhook reads them',
  )
  const result = transformObject(KINDS['Deployment']!.make(podSpec()), 'inject', { env, flags: {} })
  t.same(result.refusals, [])
  const spec = templateOf(result.object as Obj)['spec']
  t.same(
    [spec.initContainers.map((c: Obj) => c['name']), spec.containers.map((c: Obj) => c['name'])],
    [
      ['migrate', 'sidecar-redirect-validate'],
      ['sidecar-redirect-proxy', 'sidecar-redirect-hold', 'app'],
    ],
    'mode cni, classic layout, with the hold for a foreign proxy',
  )
  const [proxy, hold] = spec.containers
  t.match(proxy, {
    image: 'docker.io/envoyproxy/envoy:v1.31.2',
    args: ['-c', '/etc/envoy/envoy.yaml'],
    readinessProbe: { httpGet: { path: '/ready', port: 15021 } },
    securityContext: { runAsUser: 1337, capabilities: { drop: ['ALL'] } },
  })
  t.notOk(proxy.securityContext.readOnlyRootFilesystem)
  t.same(
    [proxy.resources, spec.initContainers[1].resources],
    [{ limits: { memory: '256Mi' } }, { requests: { cpu: '5m', memory: '32Mi' }, limits: { memory: '128Mi' } }],
    'resources.proxy, and resources.init as Helm merges it with the defaults',
  )
  t.match(hold, { image: 'registry.example/sr:9.9.9', imagePullPolicy: 'Always', securityContext: { runAsUser: 4242 } })
  t.match(spec.initContainers[1].env, [{ name: 'ISTIO_PROXY_PORT', value: '15001' }])
})

t.test('one allow-list per choice: in CNI mode the webhook lets pods set the capture settings the node does, no others', async t => {
  const schema = JSON.parse(readFileSync(`${CHART}/values.schema.json`, 'utf8')) as Obj
  const names: string[] = schema['properties']['webhook']['properties']['annotations']['items']['enum']
  const kinds = annotatableFlags()
  const own = names.filter(name => kinds.get(name) === 'inject')
  t.ok(own.length > 0 && own.length < names.length, 'the schema names both kinds')
  const allowed = async (values: Obj) => envOf(webhookContainer(await render(values)))['ISTIO_INJECT_ANNOTATIONS']
  const cni = { enabled: true, allowedAnnotations: ['capture', 'outbound-exclude-ports', 'inbound-ports'] }
  t.equal(
    await allowed({ webhook: { annotations: names }, cni }),
    [...own, 'outbound-exclude-ports', 'inbound-ports'].join(','),
    "every one of the injector's own settings as webhook.annotations says; of the capture settings, the node's list",
  )
  t.equal(
    await allowed({ cni: { enabled: true } }),
    'proxy-image,proxy-command,proxy-args,proxy-probe,inject-layout',
    'the defaults: no capture setting in CNI mode',
  )
  t.equal(
    await allowed({ webhook: { annotations: names }, cni: { ...cni, enabled: false } }),
    names.join(','),
    'init mode: webhook.annotations as it is',
  )
  // Through the injector: a pod annotated with a capture setting the node would refuse is refused at admission.
  const env = envOf(webhookContainer(await render({ cni: { enabled: true } })))
  const pod = KINDS['Pod']!.make(podSpec())
  ;(pod as Obj)['metadata'].annotations = { 'sidecar-redirect.io/outbound-exclude-ports': '443' }
  const result = transformObject(pod, 'inject', { env, flags: {} })
  t.match(result.refusals, [{ message: /does not let pods set/ }], 'refused by the webhook, as the node would refuse it')
})

t.test("the chart's include-able templates take a foreign proxy image as it is", async t => {
  const objects = await render({
    demo: { enabled: false },
    proxy: { image: 'docker.io/envoyproxy/envoy:v1.31.2', args: ['-c', '/e.yaml'], nativeSidecar: false },
    webhook: { enabled: false },
  })
  t.same(objects, [])
  const parent = `${SCRATCH}/parent`
  const pod = `apiVersion: v1
kind: Pod
metadata: { name: p }
spec:
  initContainers:
    {{- include "sidecar-redirect.initContainers" (dict "Values" (index .Values "sidecar-redirect") "Release" .Release "Capabilities" .Capabilities) | nindent 4 }}
  containers:
    {{- include "sidecar-redirect.containers" (dict "Values" (index .Values "sidecar-redirect") "Release" .Release "Capabilities" .Capabilities) | nindent 4 }}
    - { name: app, image: app:1 }
`
  mkdirSync(`${parent}/templates`, { recursive: true })
  writeFileSync(
    `${parent}/Chart.yaml`,
    'apiVersion: v2\nname: parent\nversion: 1.0.0\ndependencies:\n  - name: sidecar-redirect\n    version: 0.1.0\n',
  )
  writeFileSync(`${parent}/values.yaml`, 'sidecar-redirect: {}\n')
  writeFileSync(`${parent}/templates/pod.yaml`, pod)
  cpSync(CHART, `${parent}/charts/sidecar-redirect`, { recursive: true })
  for (const [layout, kube] of [
    ['classic', '1.28'],
    ['native', '1.33'],
  ] as const) {
    const file = `${SCRATCH}/parent-values-${layout}.json`
    writeFileSync(
      file,
      JSON.stringify({
        'sidecar-redirect': { proxy: { image: 'docker.io/envoyproxy/envoy:v1.31.2', args: ['-c', '/e.yaml'] }, webhook: { enabled: false } },
      }),
    )
    const result = await helm('template', 'sr', parent, '--kube-version', kube, '-f', file)
    t.equal(result.exitCode, 0, result.output)
    const rendered = objectsOf(result.output).find(o => o.metadata.name === 'p')! as Obj
    t.doesNotThrow(() => validateObject(rendered as K8sObject))
    const all = [...rendered['spec'].initContainers, ...rendered['spec'].containers]
    const proxy = all.find((c: Obj) => c['name'] === 'proxy')
    t.match(
      proxy,
      { image: 'docker.io/envoyproxy/envoy:v1.31.2', args: ['-c', '/e.yaml'], readinessProbe: { tcpSocket: { port: 5001 } } },
      `${layout}: your image as it is`,
    )
    t.notMatch(JSON.stringify(proxy), /\/app\/entrypoint|ISTIO_/, `${layout}: nothing of ours in the proxy container`)
    t.same(unknownKeys('Container', all), [])
    t.equal(
      all.some((c: Obj) => c['name'] === 'sidecar-redirect-hold'),
      layout === 'classic',
      `${layout}: ${layout === 'classic' ? 'a hold container holds the app' : 'no hold: the startup probe orders the start'}`,
    )
  }
  const refused = await helm(
    'template',
    'sr',
    parent,
    '--set',
    'sidecar-redirect.method=mark,sidecar-redirect.proxy.image=docker.io/envoyproxy/envoy:v1.31.2',
  )
  t.not(refused.exitCode, 0, 'method mark with a foreign image: refused')
  t.match(refused.output, /method mark with proxy\.image .*: the proxy must be started by this chart's agent/)
})

t.test("the rendered webhook container runs from the image with the chart's security context and serves the Helm-made certificate", async t => {
  await prepareNetwork(t, [])
  const objects = await render({ image: IMAGE_VALUES })
  const container = webhookContainer(objects)
  const secret = find(objects, 'Secret')
  const caBundle = Buffer.from(find(objects, 'MutatingWebhookConfiguration')['webhooks'][0].clientConfig.caBundle, 'base64').toString()
  // The Secret volume as the kubelet writes it: world-readable files (defaultMode 0644) in a directory.
  const tls = mkdtempSync(`${SCRATCH}/tls-`)
  chmodSync(tls, 0o755)
  for (const name of ['tls.crt', 'tls.key', 'ca.crt']) writeFileSync(`${tls}/${name}`, Buffer.from(secret['data'][name], 'base64'), { mode: 0o644 })
  const sc = container['securityContext']
  t.match(sc, {
    runAsUser: 65532,
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  })
  const name = unique('sr-webhook')
  await runPodman(['rm', '-f', name])
  t.teardown(() => runPodman(['rm', '-f', name]))
  await podman(
    'run',
    '-d',
    '--name',
    name,
    '--network',
    NETWORK,
    '--user',
    `${sc.runAsUser}:${sc.runAsGroup}`,
    '--read-only',
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '-v',
    `${tls}:${container['volumeMounts'][0].mountPath}:ro`,
    ...container['env'].flatMap((e: Obj) => ['-e', `${e['name']}=${e['value']}`]),
    container['image'],
    ...container['args'],
  )
  const address = await podman('inspect', name, '--format', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`)
  const review = JSON.parse(readFileSync(`${ROOT}test/fixtures/admission-review.json`, 'utf8')) as Obj
  const post = (): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: address, port: 8443, servername: 'sr-webhook.mesh.svc', ca: caBundle, method: 'POST', path: '/inject', agent: false },
        res => {
          let body = ''
          res.on('data', c => (body += c))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
        },
      )
      req.on('error', reject)
      req.end(JSON.stringify(review))
    })
  let reply: { status: number; body: string } | undefined
  for (let i = 0; i < 100 && reply === undefined; i++) {
    reply = await post().catch(async () => {
      await new Promise(resolve => setTimeout(resolve, 100))
      return undefined
    })
  }
  t.equal(reply?.status, 200, 'it answers over TLS, verified with the configuration caBundle as sr-webhook.mesh.svc')
  const response = JSON.parse(reply!.body).response
  const patched = applyPatch(
    deepClone(review['request'].object),
    JSON.parse(Buffer.from(response.patch, 'base64').toString()) as Operation[],
    true,
  ).newDocument
  t.same(
    patched.spec.initContainers.map((c: Obj) => c['image']),
    [IMAGE, IMAGE],
    'and injects with the chart image',
  )
  const pid = Number(await podman('inspect', name, '--format', '{{.State.Pid}}'))
  const status = readStatus(pid)
  t.same(
    [status.uids, status.noNewPrivs, status.capEff, status.capPrm, status.capBnd],
    [[65532, 65532, 65532, 65532], true, 0n, 0n, 0n],
    'the webhook process: UID 65532, no_new_privs, no capability at all, read from the host',
  )
  t.match((await runForStatus('podman', ['logs', name])).output, /admission: uid="3b1f0c8e[^"]*" .*decision="injected"/, 'its decision log line')
})
