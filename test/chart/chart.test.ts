// The chart, without Helm (none can be had here): values.schema.json checked with ajv as Helm would at install,
// templates rendered by .tools/helm-render (Go text/template + sprig, see renderer/main.go), every object
// validated with kubernetes-models, and the demo workload run for real with podman kube play.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { Ajv } from 'ajv'
import { DaemonSet } from 'kubernetes-models/apps/v1'
import { Pod } from 'kubernetes-models/v1'
import t from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import { runForStatus } from '../../src/backend/processes.js'
import { CAP_NET_ADMIN } from '../../src/privilege/status.js'
import { expectCapturedPod, play, prepareNetwork, ROOT } from '../helpers/podman.js'

const CHART = `${ROOT}charts/sidecar-redirect`
const defaults = parse(readFileSync(`${CHART}/values.yaml`, 'utf8')) as Record<string, unknown>
const validate = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync(`${CHART}/values.schema.json`, 'utf8')))

type Values = Record<string, unknown>
type K8sObject = { kind: string; spec: Record<string, unknown>; metadata: { name: string } }
type Container = { name: string; env: { name: string; value: string }[]; securityContext: Record<string, unknown>; args?: string[] }

// Helm's coalescing: maps merge key by key, anything else is replaced.
const coalesce = (base: Values, over: Values): Values =>
  Object.fromEntries(
    [...new Set([...Object.keys(base), ...Object.keys(over)])].map(key => {
      const [a, b] = [base[key], over[key]]
      const maps = [a, b].every(v => v !== null && typeof v === 'object' && !Array.isArray(v))
      return [key, key in over ? (maps ? coalesce(a as Values, b as Values) : b) : a]
    }),
  )

const render = async (values: Values, namespace = 'default', chart = CHART) => {
  const file = `${mkdtempSync(`${tmpdir()}/sr-values-`)}/values.yaml`
  writeFileSync(file, JSON.stringify(values))
  const result = await runForStatus(`${ROOT}.tools/helm-render`, ['-chart', chart, '-namespace', namespace, '-release', 'sr', '-f', file])
  if (result.exitCode !== 0) return { error: result.output, objects: [] as K8sObject[], notes: '' }
  const out = JSON.parse(result.output) as { manifests: { content: string }[]; notes: string }
  const objects = out.manifests.flatMap(m => parseAllDocuments(m.content).map(d => d.toJS() as K8sObject)).filter(Boolean)
  return { error: undefined, objects, notes: out.notes }
}

const containers = (pod: K8sObject, kind: 'initContainers' | 'containers'): Container[] => (pod.spec[kind] ?? []) as Container[]
const envOf = (c: Container): Record<string, string> => Object.fromEntries(c.env.map(e => [e.name, e.value]))

t.test('values.schema.json takes the defaults and good values, and refuses each bad one for its reason', async t => {
  t.ok(validate(defaults), 'values.yaml')
  for (const good of [{ method: 'mark', mark: '0x100/0xf00' }, { inbound: { ports: [80, '9000-9100'] } }, { outbound: { excludeCidrs: ['169.254.169.254/32', '2001:db8::/32'] } }, { proxy: { port: 15001, uid: 2000, gid: 3000 } }]) {
    t.ok(validate(coalesce(defaults, good)), JSON.stringify(good), { errors: validate.errors })
  }
  const bad: [Values, string][] = [
    [{ proxy: { port: 70000 } }, '/proxy/port'],
    [{ proxy: { port: '5001' } }, '/proxy/port'],
    [{ proxy: { uid: 0 } }, '/proxy/uid'],
    [{ proxy: { uid: -1 } }, '/proxy/uid'],
    [{ method: 'tproxy' }, '/method'],
    [{ outbound: { excludeCidrs: ['10.0.0.0/33'] } }, '/outbound/excludeCidrs/0'],
    [{ outbound: { includeCidrs: ['example.com'] } }, '/outbound/includeCidrs'],
    [{ inbound: { ports: ['80-'] } }, '/inbound/ports'],
    [{ ipv6: 'yes' }, '/ipv6'],
    [{ logFormat: 'yaml' }, '/logFormat'],
    [{ mark: '0' }, '/mark'],
    [{ image: { pullPolicy: 'Sometimes' } }, '/image/pullPolicy'],
    [{ proxyPort: 5001 }, ''],
  ]
  for (const [values, path] of bad) {
    t.notOk(validate(coalesce(defaults, values)), `refused: ${JSON.stringify(values)}`)
    t.ok(validate.errors?.some(e => e.instancePath === path || e.instancePath.startsWith(`${path}/`)), `  ... at ${path || 'the top (unknown key)'}`, { errors: validate.errors })
  }
})

const MATRIX: Record<string, Values> = {
  'uid demo': { demo: { enabled: true } },
  'mark demo': { method: 'mark', mark: '0x10/0xf0', demo: { enabled: true } },
  'cgroup demo, agent joins the group itself': { method: 'cgroup', demo: { enabled: true } },
  'cgroup demo with the classifier': { method: 'cgroup', demo: { enabled: true }, classifier: { enabled: true } },
  'explicit services': { method: 'explicit', services: ['198.18.0.10:80', '[2001:db8::1]:443', '198.18.1.0/24'], demo: { enabled: true } },
  'custom ports and CIDRs': {
    demo: { enabled: true },
    proxy: { port: 15001, uid: 2000, gid: 3000 },
    inbound: { ports: [80, '9000-9100'], excludePorts: [15021] },
    outbound: { includeCidrs: ['198.18.0.0/15'], excludeCidrs: ['198.18.5.0/24'], excludePorts: [22] },
    ipv6: 'false',
    backend: 'iptables-legacy',
    verify: 'rules',
    logFormat: 'json',
    extraEnv: [{ name: 'EXTRA', value: 'yes' }],
  },
}

for (const [name, values] of Object.entries(MATRIX)) {
  t.test(`renders valid objects whose env follows the values: ${name}`, async t => {
    const merged = coalesce(defaults, values) as Record<string, any>
    t.ok(validate(merged), 'the values pass the schema', { errors: validate.errors })
    const { error, objects } = await render(values)
    t.equal(error, undefined)
    for (const object of objects) {
      t.doesNotThrow(() => (object.kind === 'Pod' ? new Pod(object as never) : new DaemonSet(object as never)).validate(), `${object.kind} ${object.metadata.name} is a valid object`)
    }
    const pod = objects.find(o => o.kind === 'Pod')!
    const [init] = containers(pod, 'initContainers')
    const env = envOf(init!)
    t.same(
      {
        port: env['ISTIO_PROXY_PORT'], uid: env['ISTIO_PROXY_UID'], gid: env['ISTIO_PROXY_GID'], method: env['ISTIO_OUTBOUND_METHOD'], mark: env['ISTIO_SO_MARK'],
        inbound: env['ISTIO_INBOUND_PORTS'], inboundExclude: env['ISTIO_INBOUND_EXCLUDE_PORTS'], include: env['ISTIO_OUTBOUND_INCLUDE_CIDRS'],
        exclude: env['ISTIO_OUTBOUND_EXCLUDE_CIDRS'], excludePorts: env['ISTIO_OUTBOUND_EXCLUDE_PORTS'], ipv6: env['ISTIO_IPV6'], backend: env['ISTIO_BACKEND'],
        verify: env['ISTIO_VERIFY'], log: env['ISTIO_LOG_FORMAT'], services: env['ISTIO_SERVICES'],
      },
      {
        port: String(merged.proxy.port), uid: String(merged.proxy.uid), gid: merged.proxy.gid === null ? '' : String(merged.proxy.gid), method: merged.method, mark: merged.mark,
        inbound: merged.inbound.ports.join(','), inboundExclude: merged.inbound.excludePorts.join(','), include: merged.outbound.includeCidrs.join(','),
        exclude: merged.outbound.excludeCidrs.join(','), excludePorts: merged.outbound.excludePorts.join(','), ipv6: merged.ipv6, backend: merged.backend,
        verify: merged.verify, log: merged.logFormat, services: merged.services.join(','),
      },
      'every value reaches the init container as its env var',
    )
    for (const extra of merged.extraEnv) t.equal(env[extra.name], extra.value, `extraEnv ${extra.name}`)
    t.same(init!.securityContext, { runAsUser: 0, runAsNonRoot: false, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } }, 'init: only NET_ADMIN and NET_RAW')
    const proxy = containers(pod, 'containers').find(c => c.name === 'proxy')!
    const sc = proxy.securityContext as { runAsUser: number; runAsNonRoot: boolean; capabilities: { add?: string[]; drop: string[] } }
    const rootStart = merged.method === 'mark' || (merged.method === 'cgroup' && !merged.classifier.enabled)
    t.equal(sc.runAsUser, rootStart ? 0 : merged.proxy.uid, rootStart ? 'proxy: the agent starts as root only to drop' : 'proxy: runs as the proxy UID from its first process')
    t.same(sc.capabilities.drop, ['ALL'])
    t.same(sc.capabilities.add ?? [], merged.method === 'mark' ? ['NET_ADMIN', 'SETUID', 'SETGID', 'SETPCAP'] : rootStart ? ['SETUID', 'SETGID', 'SETPCAP'] : [], 'proxy: exactly the capabilities its method needs')
    const daemonSet = objects.find(o => o.kind === 'DaemonSet')
    t.equal(daemonSet !== undefined, merged.classifier.enabled === true, 'the classifier DaemonSet follows its toggle')
    if (daemonSet) t.match(JSON.stringify(daemonSet), /"hostPID":true/)
  })
}

t.test('kube-system is refused unless asked for, and an app on the proxy UID is refused for method uid', async t => {
  t.match((await render({ demo: { enabled: true } }, 'kube-system')).error, /refusing to render into kube-system/)
  t.equal((await render({ demo: { enabled: true }, allowKubeSystem: true }, 'kube-system')).error, undefined)
  t.match((await render({ demo: { enabled: true, appRunAsUser: 1337 } })).error, /the app runs as UID 1337, the proxy UID/)
  t.equal((await render({ method: 'mark', demo: { enabled: true, appRunAsUser: 1337 } })).error, undefined, 'with mark the app UID does not matter')
  t.match((await render({ method: 'explicit', services: ['198.18.0.10:80'], demo: { enabled: true, appRunAsUser: 1337 } })).error, /the proxy UID/, 'explicit exempts the proxy by UID too')
})

t.test("another chart can include the init container, and the UID check applies there too", async t => {
  const chart = `${mkdtempSync(`${tmpdir()}/sr-chart-`)}/sidecar-redirect`
  cpSync(CHART, chart, { recursive: true })
  writeFileSync(
    `${chart}/templates/parent.yaml`,
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: parent\nspec:\n  initContainers:\n    {{- include "sidecar-redirect.initContainer" (dict "Values" .Values "Chart" .Chart "Release" .Release "appRunAsUser" (.Values.demo.appRunAsUser)) | nindent 4 }}\n  containers:\n    - { name: app, image: app }\n',
  )
  const ok = await render({}, 'default', chart)
  t.equal(ok.error, undefined)
  t.equal(containers(ok.objects.find(o => o.metadata.name === 'parent')!, 'initContainers')[0]?.name, 'sidecar-redirect')
  t.match((await render({ demo: { appRunAsUser: 1337 } }, 'default', chart)).error, /proxy UID/)
  t.same(containers((await render({ enabled: false }, 'default', chart)).objects.find(o => o.metadata.name === 'parent')!, 'initContainers'), [], 'enabled=false renders no init container')
})

t.test('the rendered demo runs for real: uid and mark', async t => {
  await prepareNetwork(t, ['sr-demo', 'sidecar-remote'])
  for (const [method, caps] of [['uid', 0n], ['mark', 1n << BigInt(CAP_NET_ADMIN)]] as const) {
    await t.test(method, async t => {
      const { error, objects } = await render({ method, demo: { enabled: true }, image: { repository: 'localhost/sidecar-redirect', tag: 'dev', pullPolicy: 'Never' } })
      t.equal(error, undefined)
      const file = `${mkdtempSync(`${tmpdir()}/sr-demo-`)}/pod.yaml`
      writeFileSync(file, JSON.stringify(objects.find(o => o.kind === 'Pod')))
      await play(t, `${ROOT}test/image/remote.yaml`)
      await play(t, file)
      await expectCapturedPod(t, 'sr-demo', caps)
    })
  }
})

t.test("the chart's README lists every value with its default", async t => {
  const readme = readFileSync(`${CHART}/README.md`, 'utf8')
  const leaves = (values: Values, prefix = ''): [string, unknown][] =>
    Object.entries(values).flatMap(([k, v]) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !['resources', 'requests', 'limits'].includes(k) ? leaves(v as Values, `${prefix}${k}.`) : [[`${prefix}${k}`, v]]))
  for (const [key] of leaves(defaults)) t.ok(readme.includes(`\`${key}\``), key)
})
