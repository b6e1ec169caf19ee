// The chart with real Helm (test/helpers/helm.ts says where it comes from): helm lint --strict, Helm's own schema
// check, helm template for both layouts (--kube-version 1.28 and 1.33), every object validated with
// kubernetes-models, the chart as a dependency of a parent chart, and the rendered pods run for real with podman.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { DaemonSet } from 'kubernetes-models/apps/v1'
import { Pod } from 'kubernetes-models/v1'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { parseNetConf } from '../../../src/cni/config.js'
import { transformObject } from '../../../src/inject/workloads.js'
import { CHART_VALUES, envText, NOT_IN_CNI_CONFIG } from '../../../src/settings/chart.js'
import { INJECT_OPTIONS, WEBHOOK_OPTIONS } from '../../../src/settings/inject-options.js'
import * as tables from '../../../src/settings/options.js'
import { allowableAnnotations, CNI_INSTALL_OPTIONS, OPTIONS } from '../../../src/settings/options.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { CAP_NET_ADMIN } from '../../../src/privilege/status.js'
import { helm, objectsOf, type K8sObject, validateObject } from '../../helpers/helm.js'
import {
  addressOf,
  expectCapturedPod,
  IMAGE,
  IMAGE_VALUES,
  playInOrder,
  podman,
  prepareNetwork,
  REMOTE,
  REMOTE_SPEC,
  ROOT,
} from '../../helpers/podman.js'
import { renderSample } from '../../helpers/setting-samples.js'
import { KINDS, podSpec, templateOf } from '../../helpers/workloads.js'

const CHART = `${ROOT}charts/sidecar-redirect`
const defaults = parse(readFileSync(`${CHART}/values.yaml`, 'utf8')) as Values
const chartYaml = parse(readFileSync(`${CHART}/Chart.yaml`, 'utf8')) as { version: string; appVersion: string }

type Values = Record<string, any>

// Every file the test writes (values, parent charts, pod specs) goes under one directory, removed at the end.
const SCRATCH = mkdtempSync(`${tmpdir()}/sr-chart-`)
t.teardown(() => rmSync(SCRATCH, { recursive: true, force: true }))
const scratch = (name: string): string => mkdtempSync(`${SCRATCH}/${name}-`)
type Container = {
  name: string
  env?: { name: string; value: string }[]
  securityContext: Record<string, any>
  args?: string[]
  restartPolicy?: string
  startupProbe?: { exec: { command: string[] }; timeoutSeconds: number; failureThreshold: number }
  lifecycle?: { postStart?: { exec: { command: string[] } } }
  ports?: { name: string; containerPort: number; protocol: string }[]
  image: string
}

// Helm's coalescing: maps merge key by key, anything else is replaced.
const coalesce = (base: Values, over: Values): Values =>
  Object.fromEntries(
    [...new Set([...Object.keys(base), ...Object.keys(over)])].map(key => {
      const [a, b] = [base[key], over[key]]
      const maps = [a, b].every(v => v !== null && typeof v === 'object' && !Array.isArray(v))
      return [key, key in over ? (maps ? coalesce(a, b) : b) : a]
    }),
  )

/** The value at a dotted path, if any. */
const at = (values: Values, path: string): unknown => path.split('.').reduce<any>((node, part) => node?.[part], values)

/** Sets the value at a dotted path, creating the maps on the way. */
const setPath = (values: Values, path: string, value: unknown): void => {
  const parts = path.split('.')
  const parent = parts.slice(0, -1).reduce<Values>((node, part) => (node[part] ??= {}), values)
  parent[parts.at(-1)!] = value
}

const valuesFile = (values: Values): string => {
  const file = `${scratch('values')}/values.yaml`
  writeFileSync(file, JSON.stringify(values))
  return file
}

const render = async (values: Values, { namespace = 'default', kube = '1.33', chart = CHART } = {}) => {
  const result = await helm('template', 'sr', chart, '--namespace', namespace, '--kube-version', kube, '-f', valuesFile(values))
  return result.exitCode === 0 ? { error: undefined, objects: objectsOf(result.output) } : { error: result.output, objects: [] as K8sObject[] }
}

const containers = (pod: K8sObject, kind: 'initContainers' | 'containers'): Container[] => {
  const spec = (pod.kind === 'Pod' ? pod.spec : ((pod.spec?.['template'] as { spec?: Values } | undefined)?.spec ?? {})) as Values
  return (spec[kind] ?? []) as Container[]
}
const envOf = (c: Container): Record<string, string> => Object.fromEntries((c.env ?? []).map(e => [e.name, e.value]))
const READY = ['/app/entrypoint', 'ready']

t.test('helm lint --strict passes with the defaults and with every object enabled', async t => {
  for (const set of [[], ['--set', 'demo.enabled=true,classifier.enabled=true,method=cgroup']]) {
    const lint = await helm('lint', '--strict', CHART, ...set)
    t.equal(lint.exitCode, 0, lint.output)
  }
})

t.test("Helm's schema check takes good values and refuses each bad one for its reason", async t => {
  for (const good of [
    { method: 'mark', mark: '0x100/0xf00' },
    { inbound: { ports: [80, '9000-9100'] } },
    { backend: 'nftables' },
    { global: { anything: 1 } },
    { proxy: { nativeSidecar: false } },
  ]) {
    t.equal((await render(good)).error, undefined, JSON.stringify(good))
  }
  const bad: [Values, string][] = [
    [{ proxy: { port: 70000 } }, 'proxy.port'],
    [{ proxy: { port: '5001' } }, 'proxy.port'],
    [{ proxy: { uid: 0 } }, 'proxy.uid'],
    [{ proxy: { nativeSidecar: 'yes' } }, 'proxy.nativeSidecar'],
    [{ proxy: { drainSeconds: -1 } }, 'proxy.drainSeconds'],
    [{ method: 'tproxy' }, 'method'],
    [{ backend: 'ebpf' }, 'backend'],
    [{ outbound: { excludeCidrs: '10.0.0.0/8' } }, 'outbound.excludeCidrs'],
    [{ inbound: { tproxyRouteTable: 254 } }, 'inbound.tproxyRouteTable'],
    [{ ipv6: 'yes' }, 'ipv6'],
    [{ image: { pullPolicy: 'Sometimes' } }, 'image.pullPolicy'],
    [{ proxyPort: 5001 }, "additional properties 'proxyPort' not allowed"],
  ]
  for (const [values, where] of bad) {
    const { error } = await render(values)
    t.match(error, /values don't meet the specifications of the schema/, `refused: ${JSON.stringify(values)}`)
    t.match(error, where.includes(' ') ? where : `at '/${where.replaceAll('.', '/')}'`, `  ... at ${where}`)
  }
})

const MATRIX: Record<string, Values> = {
  'uid demo': { demo: { enabled: true } },
  'mark demo': { method: 'mark', mark: '0x10/0xf0', demo: { enabled: true } },
  'cgroup demo, agent joins the group itself': { method: 'cgroup', demo: { enabled: true } },
  'cgroup demo with the classifier': { method: 'cgroup', demo: { enabled: true }, classifier: { enabled: true } },
  'TPROXY inbound': { inbound: { interceptionMode: 'TPROXY', capturePort: 15006 }, demo: { enabled: true } },
  'explicit services': { method: 'explicit', services: ['198.18.0.10:80', '[2001:db8::1]:443', '198.18.1.0/24'], demo: { enabled: true } },
  'custom ports, CIDRs, timings': {
    demo: { enabled: true },
    proxy: { port: 15001, uid: 2000, gid: 3000, drainSeconds: 7, readyTimeoutSeconds: 9 },
    inbound: { ports: [80, '9000-9100'], excludePorts: [15021] },
    outbound: { includeCidrs: ['198.18.0.0/15'], excludeCidrs: ['198.18.5.0/24'], excludePorts: [22] },
    ipv6: 'false',
    backend: 'nftables',
    verify: 'rules',
    logFormat: 'json',
    extraEnv: [{ name: 'EXTRA', value: 'yes' }],
  },
}

const LABELS = {
  'app.kubernetes.io/name': 'sidecar-redirect',
  'app.kubernetes.io/instance': 'sr',
  'app.kubernetes.io/version': chartYaml.appVersion,
  'app.kubernetes.io/managed-by': 'Helm',
  'helm.sh/chart': `sidecar-redirect-${chartYaml.version}`,
}

/** The pod's proxy: where the layout puts it, and in which shape. */
const expectLayout = (t: Test, pod: K8sObject, native: boolean, hold: boolean, ready: number): Container => {
  const [inits, mains] = [containers(pod, 'initContainers'), containers(pod, 'containers')]
  t.same(
    inits.map(c => c.name),
    native ? ['sidecar-redirect', 'proxy'] : ['sidecar-redirect'],
    'init containers: the redirect init, then the proxy if native',
  )
  t.same(
    mains.map(c => c.name),
    native ? ['app'] : ['proxy', 'app'],
    'containers: the classic proxy before the app',
  )
  const proxy = (native ? inits[1] : mains[0])!
  t.equal(proxy.restartPolicy, native ? 'Always' : undefined, 'restartPolicy Always only as a native sidecar')
  t.same(
    proxy.startupProbe,
    native ? { exec: { command: READY }, periodSeconds: 1, timeoutSeconds: ready + 5, failureThreshold: 1 } : undefined,
    'a startupProbe running ready, only as a native sidecar',
  )
  t.same(
    proxy.lifecycle,
    !native && hold ? { postStart: { exec: { command: READY } } } : undefined,
    'the postStart hold, only in the classic layout and when asked',
  )
  return proxy
}

for (const [name, values] of Object.entries(MATRIX)) {
  for (const kube of ['1.28', '1.33']) {
    t.test(`Kubernetes ${kube}, ${name}: valid objects, the layout auto picks, env from the values`, async t => {
      const merged = coalesce(defaults, values)
      const { error, objects } = await render(values, { kube })
      t.equal(error, undefined)
      for (const object of objects) {
        t.doesNotThrow(() => validateObject(object), `${object.kind} ${object.metadata.name} is a valid object`)
        t.match(object.metadata.labels, LABELS, `${object.kind} ${object.metadata.name} has the standard labels`)
        for (const c of [...containers(object, 'initContainers'), ...containers(object, 'containers')]) {
          t.same(c.securityContext['seccompProfile'], { type: 'RuntimeDefault' }, `${object.kind} ${c.name}: seccomp RuntimeDefault`)
          t.equal(c.image, `${merged.image.repository}:${chartYaml.appVersion}`, `${c.name}: this chart's image tag`)
        }
      }
      const pod = objects.find(o => o.kind === 'Pod')!
      const proxy = expectLayout(t, pod, kube === '1.33', true, merged.proxy.readyTimeoutSeconds)
      const [init] = containers(pod, 'initContainers')
      const env = envOf(init!)
      t.same(
        {
          port: env['ISTIO_PROXY_PORT'],
          uid: env['ISTIO_PROXY_UID'],
          gid: env['ISTIO_PROXY_GID'],
          method: env['ISTIO_OUTBOUND_METHOD'],
          mark: env['ISTIO_SO_MARK'],
          inbound: env['ISTIO_INBOUND_PORTS'],
          inboundExclude: env['ISTIO_INBOUND_EXCLUDE_PORTS'],
          include: env['ISTIO_OUTBOUND_INCLUDE_CIDRS'],
          exclude: env['ISTIO_OUTBOUND_EXCLUDE_CIDRS'],
          excludePorts: env['ISTIO_OUTBOUND_EXCLUDE_PORTS'],
          ipv6: env['ISTIO_IPV6'],
          backend: env['ISTIO_BACKEND'],
          verify: env['ISTIO_VERIFY'],
          log: env['ISTIO_LOG_FORMAT'],
          services: env['ISTIO_SERVICES'],
        },
        {
          port: String(merged.proxy.port),
          uid: String(merged.proxy.uid),
          gid: merged.proxy.gid === null ? '' : String(merged.proxy.gid),
          method: merged.method,
          mark: merged.mark,
          inbound: merged.inbound.ports.join(','),
          inboundExclude: merged.inbound.excludePorts.join(','),
          include: merged.outbound.includeCidrs.join(','),
          exclude: merged.outbound.excludeCidrs.join(','),
          excludePorts: merged.outbound.excludePorts.join(','),
          ipv6: merged.ipv6,
          backend: merged.backend,
          verify: merged.verify,
          log: merged.logFormat,
          services: merged.services.join(','),
        },
        'every value reaches the init container as its env var',
      )
      for (const extra of merged.extraEnv) t.equal(env[extra.name], extra.value, `extraEnv ${extra.name}`)
      const proxyEnv = envOf(proxy)
      t.same(
        [proxyEnv['ISTIO_DRAIN_SECONDS'], proxyEnv['ISTIO_READY_SECONDS']],
        [String(merged.proxy.drainSeconds), String(merged.proxy.readyTimeoutSeconds)],
        'the proxy gets the drain and ready times',
      )
      t.same(
        init!.securityContext,
        {
          runAsUser: 0,
          runAsNonRoot: false,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        },
        'init: only NET_ADMIN and NET_RAW',
      )
      const sc = proxy.securityContext as { runAsUser: number; capabilities: { add?: string[]; drop: string[] } }
      const netAdmin = merged.method === 'mark' || merged.inbound.interceptionMode === 'TPROXY'
      const rootStart = netAdmin || (merged.method === 'cgroup' && !merged.classifier.enabled)
      t.equal(
        sc.runAsUser,
        rootStart ? 0 : merged.proxy.uid,
        rootStart ? 'proxy: the agent starts as root only to drop' : 'proxy: runs as the proxy UID from its first process',
      )
      t.same(sc.capabilities.drop, ['ALL'])
      t.same(
        sc.capabilities.add ?? [],
        netAdmin ? ['NET_ADMIN', 'SETUID', 'SETGID', 'SETPCAP'] : rootStart ? ['SETUID', 'SETGID', 'SETPCAP'] : [],
        'proxy: exactly the capabilities its method needs',
      )
      t.equal(pod.spec['automountServiceAccountToken'], false, 'the demo pod mounts no API token')
      const daemonSet = objects.find(o => o.kind === 'DaemonSet')
      t.equal(daemonSet !== undefined, merged.classifier.enabled === true, 'the classifier DaemonSet follows its toggle')
      if (daemonSet) {
        const spec = daemonSet.spec['template'] as { metadata: { labels: Record<string, string> }; spec: Values }
        t.match(spec.metadata.labels, LABELS, 'the DaemonSet pods have the standard labels')
        t.match(spec.spec, { hostPID: true, automountServiceAccountToken: false, enableServiceLinks: false }, 'the classifier: hostPID, no API token')
        t.same(containers(daemonSet, 'containers')[0]!.securityContext['capabilities'], { drop: ['ALL'] }, 'the classifier: no capability')
      }
    })
  }
}

t.test('proxy.nativeSidecar and proxy.holdApplicationUntilReady choose the layout whatever the version', async t => {
  for (const [values, kube, native, hold] of [
    [{ proxy: { nativeSidecar: true } }, '1.28', true, true],
    [{ proxy: { nativeSidecar: false } }, '1.33', false, true],
    [{ proxy: { nativeSidecar: false, holdApplicationUntilReady: false } }, '1.33', false, false],
    [{ proxy: { holdApplicationUntilReady: false } }, '1.29', true, false],
  ] as const) {
    const { error, objects } = await render(coalesce({ demo: { enabled: true } }, values), { kube })
    t.equal(error, undefined)
    await t.test(`${JSON.stringify(values)} on ${kube}`, async t => void expectLayout(t, objects.find(o => o.kind === 'Pod')!, native, hold, 30))
  }
})

t.test('NOTES.txt says which layout is used and which Pod Security level the namespace needs', async t => {
  for (const [set, layout] of [
    [[], /native sidecar/],
    [['--set', 'proxy.nativeSidecar=false'], /classic layout.*postStart hook holds the app until the proxy listens/],
  ] as const) {
    const install = await helm('install', '--dry-run=client', 'sr', CHART, ...set)
    t.equal(install.exitCode, 0, install.output)
    t.match(install.output, layout)
    t.match(
      install.output,
      /neither the "baseline" nor the "restricted"\nPod Security level allows: label the namespace pod-security.kubernetes.io\/enforce=privileged/,
    )
  }
})

t.test("NOTES.txt gives the image reference to use as Istio's init image", async t => {
  for (const [set, image] of [
    [[], 'ghcr.io/sidecar-redirect/sidecar-redirect:0.1.0'],
    [['--set', 'image.repository=registry.example/team/sr', '--set', 'image.tag=v9'], 'registry.example/team/sr:v9'],
  ] as const) {
    const install = await helm('install', '--dry-run=client', 'sr', CHART, ...set)
    t.equal(install.exitCode, 0, install.output)
    t.ok(install.output.includes(`\n  --set global.proxy_init.image=${image}\n`), `istiod's value names ${image}`)
    t.match(install.output, /an init container named istio-init \(istio-validation with Istio CNI\) with only this image/)
  }
})

// The container-level rules of Pod Security "restricted" (kubernetes.io/docs/concepts/security/pod-security-standards),
// and hostPath volumes, which already "baseline" forbids: what the chart README's table of levels rests on.
const restrictedViolations = (c: Container, volumes: Values[]): string[] => {
  const sc = c.securityContext
  const mounted = ((c as Values)['volumeMounts'] ?? []).map((m: Values) => volumes.find(v => v['name'] === m['name']))
  return [
    ...((sc['capabilities']?.add ?? []) as string[]).filter(cap => cap !== 'NET_BIND_SERVICE').map(cap => `adds ${cap}`),
    ...(sc['capabilities']?.drop?.includes('ALL') ? [] : ['does not drop ALL']),
    ...(sc['runAsNonRoot'] === true && sc['runAsUser'] !== 0 ? [] : ['may run as root']),
    ...(sc['allowPrivilegeEscalation'] === false ? [] : ['allows privilege escalation']),
    ...(['RuntimeDefault', 'Localhost'].includes(sc['seccompProfile']?.type) ? [] : ['no seccomp profile']),
    ...mounted.filter((v: Values | undefined) => v?.['hostPath']).map(() => 'mounts a hostPath'),
  ]
}

t.test("the Pod Security levels the chart README gives: which containers meet 'restricted'", async t => {
  for (const [values, init, proxy] of [
    [{ method: 'uid' }, false, true],
    [{ method: 'explicit', services: ['198.18.0.10:80'] }, false, true],
    [{ method: 'cgroup', classifier: { enabled: true } }, false, false],
    [{ method: 'cgroup' }, false, false],
    [{ method: 'mark' }, false, false],
  ] as const) {
    const pod = (await render(coalesce({ demo: { enabled: true } }, values))).objects.find(o => o.kind === 'Pod')!
    const volumes = (pod.spec['volumes'] ?? []) as Values[]
    const all = [...containers(pod, 'initContainers'), ...containers(pod, 'containers')]
    const [redirect, agent] = ['sidecar-redirect', 'proxy'].map(name => restrictedViolations(all.find(c => c.name === name)!, volumes))
    t.equal(redirect!.length === 0, init, `${values.method}: the init container is ${init ? '' : 'not '}restricted (${redirect!.join(', ')})`)
    t.equal(agent!.length === 0, proxy, `${JSON.stringify(values)}: the proxy is ${proxy ? '' : 'not '}restricted (${agent!.join(', ')})`)
    t.same(restrictedViolations(all.find(c => c.name === 'app')!, volumes), [], 'the demo app is restricted')
  }
  const daemonSet = (await render({ classifier: { enabled: true } })).objects.find(o => o.kind === 'DaemonSet')!
  t.equal((daemonSet.spec['template'] as { spec: Values }).spec['hostPID'], true, "the classifier uses hostPID, which only 'privileged' allows")
})

t.test('kube-system is refused unless asked for, and an app on the proxy UID is refused for method uid', async t => {
  t.match((await render({ demo: { enabled: true } }, { namespace: 'kube-system' })).error, /refusing to render into kube-system/)
  t.equal((await render({ demo: { enabled: true }, allowKubeSystem: true }, { namespace: 'kube-system' })).error, undefined)
  t.match((await render({ demo: { enabled: true, appRunAsUser: 1337 } })).error, /the app runs as UID 1337, the proxy UID/)
  t.equal((await render({ method: 'mark', demo: { enabled: true, appRunAsUser: 1337 } })).error, undefined, 'with mark the app UID does not matter')
  t.match(
    (await render({ method: 'explicit', services: ['198.18.0.10:80'], demo: { enabled: true, appRunAsUser: 1337 } })).error,
    /the proxy UID/,
    'explicit exempts the proxy by UID too',
  )
})

// CNI mode: the node DaemonSet, and pods without a capability anywhere.
const capabilitiesAdded = (pod: K8sObject): string[] =>
  [...containers(pod, 'initContainers'), ...containers(pod, 'containers')].flatMap(c =>
    ((c.securityContext['capabilities']?.add ?? []) as string[]).map(cap => `${c.name}: ${cap}`),
  )

t.test('CNI mode: the DaemonSet is rendered and valid, on the host network, on every node, with both containers', async t => {
  const lint = await helm('lint', '--strict', CHART, '--set', 'cni.enabled=true,demo.enabled=true')
  t.equal(lint.exitCode, 0, lint.output)
  for (const kube of ['1.28', '1.33']) {
    const { error, objects } = await render({ cni: { enabled: true }, demo: { enabled: true } }, { kube })
    t.equal(error, undefined)
    const ds = objects.find(o => o.kind === 'DaemonSet' && o.metadata.name === 'sr-cni')!
    t.doesNotThrow(() => new DaemonSet(ds as never).validate(), `${kube}: a valid DaemonSet`)
    t.match(ds.metadata.labels, { ...LABELS, 'app.kubernetes.io/component': 'cni' })
    const spec = (ds.spec['template'] as { spec: Values }).spec
    t.match(
      spec,
      {
        hostNetwork: true,
        priorityClassName: 'system-node-critical',
        tolerations: [{ operator: 'Exists' }],
        automountServiceAccountToken: false,
      },
      'hostNetwork, system-node-critical, tolerates every taint, no API token',
    )
    const [installer, agent] = containers(ds, 'containers')
    t.same([installer!.name, installer!.args, agent!.name, agent!.args], ['install-cni', ['cni-install'], 'node-agent', ['node-agent']])
    t.same(installer!.securityContext['capabilities'], { drop: ['ALL'] }, 'the installer: root, no capability')
    t.same(
      agent!.securityContext['capabilities'],
      { add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'], drop: ['ALL'] },
      'the agent: nsenter and the rule tools',
    )
    for (const c of [installer!, agent!]) t.match(c.securityContext, { runAsUser: 0, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true })
    const volumes = Object.fromEntries((spec['volumes'] as Values[]).map(v => [v['name'], v['hostPath']['path']]))
    const mounts = (c: Container) => Object.fromEntries(((c as Values)['volumeMounts'] as Values[]).map(m => [m['name'], m]))
    t.same(
      volumes,
      { 'cni-conf': '/etc/cni/net.d', 'cni-bin': '/opt/cni/bin', netns: '/var/run/netns', socket: '/run/sidecar-redirect' },
      'host paths',
    )
    t.same(
      [mounts(installer!)['cni-conf']?.['mountPath'], mounts(installer!)['cni-bin']?.['mountPath']],
      ['/host/etc/cni/net.d', '/host/opt/cni/bin'],
      'the installer sees them where its defaults look',
    )
    t.same(mounts(agent!)['netns'], { name: 'netns', mountPath: '/var/run/netns', mountPropagation: 'HostToContainer' }, 'netns mounts propagate')
    t.equal(mounts(agent!)['socket']?.['mountPath'], '/run/sidecar-redirect')
    t.equal(envOf(installer!)['ISTIO_NODE_AGENT_SOCKET'], envOf(agent!)['ISTIO_NODE_AGENT_SOCKET'], 'the entry names the socket the agent listens on')
  }
})

t.test('CNI mode: pods get validate first, no NET_ADMIN and no added capability anywhere, and the capture annotation', async t => {
  for (const [values, restricted] of [
    [{ method: 'uid' }, true],
    [{ method: 'explicit', services: ['198.18.0.10:80'] }, true],
    [{ method: 'cgroup', classifier: { enabled: true } }, false],
  ] as const) {
    for (const kube of ['1.28', '1.33']) {
      const { error, objects } = await render(coalesce({ cni: { enabled: true }, demo: { enabled: true } }, values), { kube })
      t.equal(error, undefined)
      const pod = objects.find(o => o.kind === 'Pod')!
      t.doesNotThrow(() => new Pod(pod as never).validate())
      const inits = containers(pod, 'initContainers')
      t.same(
        inits.map(c => c.name),
        kube === '1.33' ? ['sidecar-redirect-validate', 'proxy'] : ['sidecar-redirect-validate'],
        `${values.method} on ${kube}: validate first, in place of the NET_ADMIN init container`,
      )
      t.same(inits[0]!.args, ['validate'])
      t.same(capabilitiesAdded(pod), [], `${values.method} on ${kube}: no container adds a capability`)
      t.notMatch(JSON.stringify(pod.spec), /NET_ADMIN/, 'NET_ADMIN appears nowhere in the pod spec')
      t.match(inits[0]!.securityContext, { runAsUser: 65532, runAsNonRoot: true, capabilities: { drop: ['ALL'] } })
      t.same((pod.metadata as Values)['annotations'], { 'sidecar-redirect.io/capture': 'enabled' }, 'annotated for capture')
      // validate decides the pod's settings as the node does: the values, and the annotations the allow-list names.
      t.match(envOf(inits[0]!), { ISTIO_CNI_ALLOWED_ANNOTATIONS: '', ISTIO_POD_ANNOTATIONS_FILE: '/etc/sidecar-redirect/pod/annotations' })
      t.same(
        (pod.spec['volumes'] as Values[]).find(v => v['name'] === 'sidecar-redirect-pod'),
        { name: 'sidecar-redirect-pod', downwardAPI: { items: [{ path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } }] } },
        "the pod's annotations reach validate through the downward API",
      )
      const volumes = (pod.spec['volumes'] ?? []) as Values[]
      const violations = [...inits, ...containers(pod, 'containers')].flatMap(c => restrictedViolations(c, volumes).map(v => `${c.name} ${v}`))
      t.equal(violations.length === 0, restricted, `${values.method}: every container 'restricted': ${restricted} (${violations.join(', ')})`)
    }
  }
})

t.test('CNI mode: values reach the installer, and methods that need a capability in the pod are refused', async t => {
  const values = {
    cni: {
      enabled: true,
      confDir: '/etc/kubernetes/cni/net.d',
      binDir: '/home/kubernetes/bin',
      netnsDir: '/run/netns',
      socketDir: '/var/run/sr',
      captureAll: true,
      allowedAnnotations: ['inbound-exclude-ports', 'capture'],
      excludeNamespaces: ['kube-system', 'monitoring'],
      checkSeconds: 3,
      concurrency: 8,
      recheckSeconds: 5,
      metricsPort: 9464,
    },
    proxy: { port: 15001, uid: 2000 },
    outbound: { excludeCidrs: ['169.254.169.254/32'] },
    verify: 'live',
  }
  const { error, objects } = await render(values)
  t.equal(error, undefined)
  const ds = objects.find(o => o.metadata.name === 'sr-cni')!
  const spec = (ds.spec['template'] as { spec: Values }).spec
  t.same(
    (spec['volumes'] as Values[]).map(v => v['hostPath']['path']),
    ['/etc/kubernetes/cni/net.d', '/home/kubernetes/bin', '/run/netns', '/var/run/sr'],
  )
  const env = envOf(containers(ds, 'containers')[0]!)
  t.match(env, {
    ISTIO_NODE_AGENT_SOCKET: '/var/run/sr/agent.sock',
    ISTIO_CNI_CAPTURE_ALL: 'true',
    ISTIO_CNI_ALLOWED_ANNOTATIONS: 'inbound-exclude-ports,capture',
    ISTIO_CNI_EXCLUDE_NAMESPACES: 'kube-system,monitoring',
    ISTIO_CNI_CHECK_SECONDS: '3',
  })
  const settings = JSON.parse(env['ISTIO_CNI_SETTINGS']!) as Record<string, string>
  t.match(settings, { ISTIO_PROXY_PORT: '15001', ISTIO_PROXY_UID: '2000', ISTIO_OUTBOUND_EXCLUDE_CIDRS: '169.254.169.254/32' }, "the pods' settings")
  t.notOk('ISTIO_VERIFY' in settings, 'no ISTIO_VERIFY: the node reads the rules back exactly; the pod probes live itself')
  const agent = containers(ds, 'containers')[1]!
  t.match(envOf(agent), {
    ISTIO_NODE_AGENT_SOCKET: '/var/run/sr/agent.sock',
    ISTIO_NODE_AGENT_CONCURRENCY: '8',
    ISTIO_NODE_AGENT_RECHECK_SECONDS: '5',
    ISTIO_NODE_AGENT_METRICS: ':9464/metrics',
  })
  t.same(agent.ports, [{ name: 'metrics', containerPort: 9464, protocol: 'TCP' }], 'the metrics port is declared')
  t.match((ds.spec['template'] as { metadata: Values }).metadata['annotations'], { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9464' })
  const quiet = (await render({ cni: { enabled: true, metricsPort: 0 }, demo: { enabled: true } })).objects.find(o => o.metadata.name === 'sr-cni')!
  const quietAgent = containers(quiet, 'containers')[1]!
  t.notOk('ISTIO_NODE_AGENT_METRICS' in envOf(quietAgent), 'metricsPort 0: no metrics setting')
  t.notOk('ISTIO_NODE_AGENT_CONCURRENCY' in envOf(quietAgent), 'concurrency 0: the agent picks twice its CPUs')
  t.equal(quietAgent.ports, undefined, 'and no port')
  t.equal(
    objects.some(o => o.kind === 'DaemonSet' && o.metadata.name === 'sr-cni'),
    true,
  )
  t.notOk(
    (await render({})).objects.some(o => o.kind === 'DaemonSet'),
    'cni.enabled=false (the default) renders no DaemonSet',
  )
  t.match(
    (await render({ cni: { enabled: true }, method: 'mark', demo: { enabled: true } })).error,
    /cni\.enabled with method mark: the proxy needs CAP_NET_ADMIN/,
  )
  t.match(
    (await render({ cni: { enabled: true }, inbound: { interceptionMode: 'TPROXY' }, demo: { enabled: true } })).error,
    /cni\.enabled with inbound\.interceptionMode TPROXY: the proxy needs CAP_NET_ADMIN/,
  )
  t.match(
    (await render({ cni: { enabled: true }, method: 'cgroup', demo: { enabled: true } })).error,
    /cni\.enabled with method cgroup needs classifier\.enabled=true/,
  )
  t.match(
    (await render({ cni: { enabled: true, validateRunAsUser: 1337 }, demo: { enabled: true } })).error,
    /cni\.validateRunAsUser 1337 is the proxy's UID/,
  )
  for (const [bad, where] of [
    [{ cni: { confDir: 'etc/cni' } }, 'cni/confDir'],
    [{ cni: { excludeNamespaces: ['Kube_System'] } }, 'cni/excludeNamespaces/0'],
    [{ cni: { checkSeconds: 0 } }, 'cni/checkSeconds'],
    [{ cni: { metricsPort: 70000 } }, 'cni/metricsPort'],
    [{ cni: { recheckSeconds: -1 } }, 'cni/recheckSeconds'],
    // A setting that names a node path or decides how the agent runs is never a pod's to set.
    [{ cni: { allowedAnnotations: ['services-file'] } }, 'cni/allowedAnnotations/0'],
    [{ cni: { allowedAnnotations: ['capture', 'capture'] } }, 'cni/allowedAnnotations'],
    [{ cni: { bogus: 1 } }, 'cni'],
  ] as const) {
    const { error: refused } = await render(bad)
    t.match(refused, /values don't meet the specifications of the schema/, JSON.stringify(bad))
    t.match(refused, `at '/${where}'`)
  }
})

// A parent chart of another version that depends on this one, as users include it, and whose own pod includes
// the named templates. Its app connects to `app.connect` as soon as it starts: its first connection must work.
const PARENT_POD = `apiVersion: v1
kind: Pod
metadata:
  name: parent
  labels: { app: parent }
spec:
  restartPolicy: Never
  initContainers:
    {{- /* .Chart here is the parent's (9.9.9), as an includer that passes it along hands it over */}}
    {{- include "sidecar-redirect.initContainers" (dict "Values" (index .Values "sidecar-redirect") "Chart" .Chart "Release" .Release "Capabilities" .Capabilities "appRunAsUser" 1000) | nindent 4 }}
    - { name: parent-init, image: {{ .Values.image }}, command: ["/usr/local/bin/node", "-e", "0"] }
  containers:
    {{- /* as the README shows it, without .Chart */}}
    {{- include "sidecar-redirect.containers" (dict "Values" (index .Values "sidecar-redirect") "Release" .Release "Capabilities" .Capabilities) | nindent 4 }}
    - name: app
      image: {{ .Values.image }}
      command: ["/usr/local/bin/node", "/app/dist/peer.mjs", "connect", {{ .Values.connect.host | quote }}, {{ .Values.connect.port | quote }}]
      securityContext: { runAsUser: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: [ALL] }, seccompProfile: { type: RuntimeDefault } }
`

const parentChart = (): string => {
  const dir = `${scratch('parent')}/parent`
  mkdirSync(`${dir}/templates`, { recursive: true })
  writeFileSync(
    `${dir}/Chart.yaml`,
    `apiVersion: v2\nname: parent\nversion: 9.9.9\nappVersion: "9.9.9"\ndependencies:\n  - name: sidecar-redirect\n    version: ${chartYaml.version}\n    repository: file://${CHART}\n`,
  )
  writeFileSync(
    `${dir}/values.yaml`,
    'global: { region: test }\nimage: parent-app:9.9.9\nconnect: { host: 198.18.0.10, port: 9090 }\nsidecar-redirect: {}\n',
  )
  writeFileSync(`${dir}/templates/pod.yaml`, PARENT_POD)
  cpSync(CHART, `${dir}/charts/sidecar-redirect`, { recursive: true })
  return dir
}

t.test('as a dependency of a parent chart with global values: it renders, and the included templates use this chart’s tag', async t => {
  const parent = parentChart()
  const lint = await helm('lint', '--strict', parent)
  t.equal(lint.exitCode, 0, lint.output)
  for (const kube of ['1.28', '1.33']) {
    const { error, objects } = await render({ 'sidecar-redirect': { proxy: { port: 15001 }, demo: { enabled: true } } }, { kube, chart: parent })
    t.equal(error, undefined, 'global reaches the subchart and its schema takes it')
    const pod = objects.find(o => o.metadata.name === 'parent')!
    t.doesNotThrow(() => new Pod(pod as never).validate())
    const inits = containers(pod, 'initContainers')
    t.same(
      inits.map(c => c.name),
      kube === '1.33' ? ['sidecar-redirect', 'proxy', 'parent-init'] : ['sidecar-redirect', 'parent-init'],
      `${kube}: the redirect init, the native proxy, then the parent's own`,
    )
    const ours = [...inits, ...containers(pod, 'containers')].filter(c => c.name === 'sidecar-redirect' || c.name === 'proxy')
    t.equal(ours.length, 2, 'the redirect init and the proxy')
    for (const c of ours)
      t.equal(c.image, `ghcr.io/sidecar-redirect/sidecar-redirect:${chartYaml.appVersion}`, `${c.name}: this chart's tag, not the parent's 9.9.9`)
    t.equal(envOf(ours[0]!)['ISTIO_PROXY_PORT'], '15001', "the parent's values for the subchart reach the included templates")
    const demo = objects.find(o => o.metadata.name === 'sr-demo')!
    t.match(demo.metadata.labels, LABELS, "the subchart's own objects carry its labels, not the parent's")
  }
  const off = (await render({ 'sidecar-redirect': { enabled: false } }, { chart: parent })).objects.find(o => o.metadata.name === 'parent')!
  t.same(
    [containers(off, 'initContainers'), containers(off, 'containers')].map(list => list.map(c => c.name)),
    [['parent-init'], ['app']],
    'enabled=false renders neither the init container nor the proxy',
  )
})

// The stand-in transparent proxy shipped in the image, in place of Envoy.
const STAND_IN_PROXY = ['/usr/local/bin/node', '/app/dist/peer.mjs', 'proxy', '5001']

t.test('the rendered pods run for real, classic layout with the hold', async t => {
  await prepareNetwork(t, ['sr-demo', 'sidecar-remote', 'parent'])
  await playInOrder(t, REMOTE_SPEC)
  const remote = await addressOf(REMOTE)
  const image = IMAGE_VALUES
  for (const [method, caps] of [
    ['uid', 0n],
    ['mark', 1n << BigInt(CAP_NET_ADMIN)],
  ] as const) {
    await t.test(`the demo pod, method ${method}`, async t => {
      const { error, objects } = await render({ method, demo: { enabled: true }, image, proxy: { nativeSidecar: false } })
      t.equal(error, undefined)
      const file = `${scratch('demo')}/pod.yaml`
      writeFileSync(file, JSON.stringify(objects.find(o => o.kind === 'Pod')))
      await expectCapturedPod(t, await playInOrder(t, file), caps)
    })
  }
  await t.test("the parent chart's app: its first connection, made as it starts, goes through the proxy", async t => {
    const values = {
      image: IMAGE,
      connect: { host: remote, port: 9090 },
      'sidecar-redirect': { image, proxy: { nativeSidecar: false, command: STAND_IN_PROXY } },
    }
    const { error, objects } = await render(values, { chart: parentChart() })
    t.equal(error, undefined)
    const file = `${scratch('parent-pod')}/pod.yaml`
    writeFileSync(file, JSON.stringify(objects.find(o => o.metadata.name === 'parent')))
    const pod = await playInOrder(t, file)
    t.equal(await podman('wait', `${pod}-app`), '0', 'the app exited 0')
    t.match(await podman('logs', `${pod}-app`), /"ok":true,"reply":\{"label":"remote"/, 'answered by the remote')
    t.match(await podman('logs', `${pod}-proxy`), `"relayed":{"from":"${await addressOf(pod)}","to":"${remote}:9090"}`, 'through the proxy')
  })
})

// The containers of ours that read the capture settings, by the render that has them: the init container, the
// proxy's agent, the webhook (for the pods it injects); in CNI mode validate instead of init, and the CNI plugin's
// config; with a proxy image of the user's (which the demo never has: a parent chart's pod), the hold.
const TAKERS = {
  classic: { values: { demo: { enabled: true } }, containers: ['sidecar-redirect', 'proxy', 'webhook'] },
  cni: { values: { demo: { enabled: true }, cni: { enabled: true } }, containers: ['sidecar-redirect-validate', 'proxy', 'webhook'] },
  hold: { values: { proxy: { image: 'envoyproxy/envoy:v1', nativeSidecar: false } }, containers: ['sidecar-redirect-hold'] },
}
const FOREIGN_PROXY = TAKERS.hold.values

/** Renders `values` for this chart, or for the parent chart whose pod includes the templates with a foreign proxy. */
const renderAs = (values: Values) =>
  values['proxy']?.image === FOREIGN_PROXY.proxy.image ? render({ 'sidecar-redirect': values }, { chart: parentChart() }) : render(values)

/** Every container of every object rendered, by name. */
const allContainers = (objects: K8sObject[]): Map<string, Container> =>
  new Map(objects.flatMap(o => [...containers(o, 'initContainers'), ...containers(o, 'containers')]).map(c => [c.name, c]))

const cniSettingsOf = (objects: K8sObject[]): Record<string, string> =>
  JSON.parse(envOf(allContainers(objects).get('install-cni')!)['ISTIO_CNI_SETTINGS']!) as Record<string, string>

t.test('every setting of the table: its value reaches every container that takes it, and the CNI plugin’s config', async t => {
  const keys = Object.keys(CHART_VALUES) as (keyof typeof CHART_VALUES)[]
  for (const [name, sampled] of [
    ['the defaults', false],
    ['a value other than the default for each', true],
  ] as const) {
    const settings: Values = {}
    for (const key of keys) if (sampled) setPath(settings, CHART_VALUES[key].path, renderSample(key))
    // CNI mode and a proxy without our agent refuse TPROXY (the proxy would need CAP_NET_ADMIN): there inbound stays REDIRECT.
    const redirect = coalesce(settings, sampled ? { inbound: { interceptionMode: 'REDIRECT' } } : {})
    for (const [mode, { values, containers: takers }] of Object.entries(TAKERS)) {
      const used = mode === 'classic' ? settings : redirect
      const want = (key: (typeof keys)[number]): string => {
        const value = at(used, CHART_VALUES[key].path)
        return value === undefined ? OPTIONS[key].default : envText(CHART_VALUES[key].form, value)
      }
      const { error, objects } = await renderAs(coalesce(values, used))
      t.equal(error, undefined, `${name}, ${mode}: renders`)
      const found = allContainers(objects)
      for (const taker of takers) {
        const env = envOf(found.get(taker) ?? { name: taker, image: '', securityContext: {} })
        for (const key of keys) t.equal(env[OPTIONS[key].env], want(key), `${name}, ${mode}: ${taker} gets ${OPTIONS[key].env}`)
        t.doesNotThrow(() => parseSettings(env), `${name}, ${mode}: the settings parser takes ${taker}'s env`)
      }
      if (mode !== 'hold') {
        // The pods the webhook injects read the same settings as the chart's own.
        const webhook = envOf(found.get('webhook')!)
        const result = transformObject(KINDS['Pod']!.make(podSpec()), 'inject', { env: webhook, flags: {} })
        t.same(result.refusals, [], `${name}, ${mode}: the webhook injects a pod`)
        const injected = (templateOf(result.object as Values)['spec'].initContainers as Container[]).find(c =>
          c.name.startsWith('sidecar-redirect-'),
        )!
        t.same(parseSettings(envOf(injected)), parseSettings(webhook), `${name}, ${mode}: its ${injected.name} reads every setting as the chart's`)
      }
      if (mode !== 'cni') continue
      const cni = cniSettingsOf(objects)
      for (const key of keys)
        t.equal(cni[OPTIONS[key].env], key in NOT_IN_CNI_CONFIG ? undefined : want(key), `${name}: the CNI config's ${OPTIONS[key].env}`)
      const entry = JSON.stringify({ cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'sidecar-redirect', settings: cni })
      t.doesNotThrow(() => parseNetConf(entry), `${name}: the CNI plugin takes its config's settings`)
      t.doesNotThrow(() => CNI_INSTALL_OPTIONS.podSettings.parse(JSON.stringify(cni), 'ISTIO_CNI_SETTINGS'), '  and so does the installer')
    }
  }
})

t.test('TPROXY needs our agent in the proxy container: a proxy image without it is refused, as the injector refuses it', async t => {
  const { error } = await renderAs({ ...FOREIGN_PROXY, inbound: { interceptionMode: 'TPROXY' } })
  t.match(error, /inbound\.interceptionMode TPROXY with proxy\.image envoyproxy\/envoy:v1: the proxy must be started by this chart's agent/)
})

t.test('extraEnv reaches every container of ours and the CNI plugin’s config, and replaces the value it names', async t => {
  const extraEnv = [
    { name: 'ISTIO_PROXY_PORT', value: '7001' },
    { name: 'ISTIO_NODE_AGENT_DEADLINE_SECONDS', value: '90' },
    { name: 'SR_EXTRA', value: 'yes' },
  ]
  const renders = [
    { cni: { enabled: true }, classifier: { enabled: true }, method: 'cgroup', demo: { enabled: true } },
    { demo: { enabled: true } },
    FOREIGN_PROXY,
  ] as Values[]
  const seen = new Set<string>()
  for (const values of renders) {
    const { error, objects } = await renderAs({ ...values, extraEnv })
    t.equal(error, undefined)
    for (const [name, c] of allContainers(objects)) {
      // The demo's and the parent's own app and init, and the user's proxy, are not ours.
      if (!c.image.startsWith(defaults['image'].repository) || ['app', 'parent-init'].includes(name)) continue
      seen.add(name)
      const names = (c.env ?? []).map(e => e.name)
      t.equal(envOf(c)['SR_EXTRA'], 'yes', `${name} gets extraEnv`)
      t.same(names, [...new Set(names)], `${name}: no variable twice`)
      if (names.includes('ISTIO_OUTBOUND_METHOD')) t.equal(envOf(c)['ISTIO_PROXY_PORT'], '7001', `${name}: extraEnv's value wins`)
    }
    if (values['cni']) {
      const cni = cniSettingsOf(objects)
      t.equal(cni['ISTIO_PROXY_PORT'], '7001', "the CNI config's settings take extraEnv's")
      t.notOk('SR_EXTRA' in cni || 'ISTIO_NODE_AGENT_DEADLINE_SECONDS' in cni, 'but only the settings of the table (the plugin refuses others)')
    }
  }
  t.same(
    [...seen].sort(),
    ['classifier', 'install-cni', 'node-agent', 'proxy', 'sidecar-redirect', 'sidecar-redirect-hold', 'sidecar-redirect-validate', 'webhook'],
    'every container of ours was seen',
  )
})

// The settings of each part that no value sets, and why; each is still set through extraEnv.
const NO_VALUE: Record<string, string> = {
  ISTIO_PROXY_USER: 'the proxy runs as proxy.uid (ISTIO_PROXY_UID)',
  ISTIO_PROXY_GROUPS: 'no supplementary groups unless asked for',
  ISTIO_PROXY_NOFILE: "the proxy keeps the container runtime's limit unless asked for",
  ISTIO_NODE_AGENT_DEADLINE_SECONDS: "the agent's default",
  ISTIO_NODE_AGENT_STATE_DIR: "in the socket's host directory, which the DaemonSet mounts",
  ISTIO_CNI_PLUGIN: "the plugin in this chart's image",
}

t.test("every setting of every part's table is set in the container that reads it, or has a reason not to be", async t => {
  const parts: [string, Record<string, { env: string }>[]][] = [
    ['proxy', [tables.AGENT_OPTIONS]],
    ['classifier', [tables.CLASSIFIER_OPTIONS]],
    ['node-agent', [tables.NODE_AGENT_OPTIONS]],
    ['install-cni', [CNI_INSTALL_OPTIONS]],
    ['sidecar-redirect-validate', [tables.VALIDATE_OPTIONS]],
    ['webhook', [INJECT_OPTIONS, WEBHOOK_OPTIONS]],
  ]
  // Between them, every conditional variable: the classifier's socket, net_cls root, concurrency, metrics.
  const renders = [
    { cni: { enabled: true, concurrency: 4 }, classifier: { enabled: true }, method: 'cgroup', demo: { enabled: true } },
    { method: 'cgroup', demo: { enabled: true } },
  ]
  const envs = new Map<string, Set<string>>()
  for (const values of renders) {
    const { error, objects } = await render(values)
    t.equal(error, undefined)
    for (const [name, c] of allContainers(objects)) envs.set(name, new Set([...(envs.get(name) ?? []), ...Object.keys(envOf(c))]))
  }
  for (const [container, tables] of parts) {
    for (const spec of tables.flatMap(table => Object.values(table))) {
      const set = envs.get(container)?.has(spec.env) === true
      t.ok(set || spec.env in NO_VALUE, `${container}: ${spec.env} ${set ? 'is set' : `has no value: ${NO_VALUE[spec.env]}`}`)
    }
  }
})

t.test('the schema lets cni.allowedAnnotations name exactly what the option table lets a pod set', async t => {
  const schema = JSON.parse(readFileSync(`${CHART}/values.schema.json`, 'utf8')) as Values
  t.same(schema['properties']['cni']['properties']['allowedAnnotations']['items']['enum'], allowableAnnotations())
})

t.test("this chart's appVersion is the one its templates use, and the README lists every value", async t => {
  const helpers = readFileSync(`${CHART}/templates/_settings.tpl`, 'utf8')
  t.match(helpers, `{{- define "sidecar-redirect.appVersion" -}}\n${chartYaml.appVersion}\n`)
  const readme = readFileSync(`${CHART}/README.md`, 'utf8')
  const leaves = (values: Values, prefix = ''): [string, unknown][] =>
    Object.entries(values).flatMap(([k, v]) =>
      v !== null && typeof v === 'object' && !Array.isArray(v) && !['resources', 'requests', 'limits'].includes(k)
        ? leaves(v, `${prefix}${k}.`)
        : [[`${prefix}${k}`, v]],
    )
  for (const [key] of leaves(defaults)) t.ok(readme.includes(`\`${key}\``), key)
})
