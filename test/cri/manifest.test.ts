// The pod runner's mapping of a Pod manifest to CRI configs, without a runtime: what the API server refuses, the
// kubelet's field-by-field mapping (securityContext, resources, env, DNS, volumes) on the examples and on what
// the chart renders, and the small rules ($(VAR) expansion, quantities, QoS). Pure, so it runs in npm test too.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import {
  type AdmittedPod,
  admitPod,
  ContainerConfigError,
  type ContainerFacts,
  containerConfig,
  dnsOf,
  expandVars,
  MASKED_PATHS,
  ManifestError,
  type NodeFacts,
  parseQuantity,
  qosOf,
  READONLY_PATHS,
  sandboxConfig,
  startupProbeOf,
  volumePlans,
} from '../helpers/cri/manifest.js'
import { podsOf } from '../helpers/cri/pod.js'
import { helm } from '../helpers/helm.js'
import { ROOT } from '../helpers/podman.js'

const example = (file: string) => parse(readFileSync(`${ROOT}examples/${file}`, 'utf8')) as Record<string, any>
const FACTS: NodeFacts = {
  nodeName: 'node-1',
  uid: 'uid-1',
  logDirectory: '/logs/pod',
  cgroupParent: '/node-1/poduid-1',
  memoryCapacity: 8 * 2 ** 30,
  cpuCapacity: 2,
  clusterDns: { servers: [], domain: 'cluster.local' },
  nodeDns: { servers: ['192.0.2.53'], searches: ['example.test'], options: ['edns0'] },
  seen: '2026-01-01T00:00:00.000Z',
}
const CONTAINER_FACTS: ContainerFacts = {
  podIPs: ['198.19.40.2', '2001:db8:40::2'],
  hostIPs: ['198.19.40.1'],
  imageUser: { username: '' },
  volumes: { work: '/vol/work', info: '/vol/info' },
  terminationMessageFile: '/pod/termination-log',
  hostsFile: '/pod/etc-hosts',
  configMaps: { settings: { MODE: 'fast', 'proxy.yaml': 'port: 1' } },
  secrets: {},
}
const pod = (spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'p' }) => ({ apiVersion: 'v1', kind: 'Pod', metadata, spec })
const app = (extra: Record<string, unknown> = {}) => ({ name: 'app', image: 'localhost/sidecar-redirect:dev', ...extra })
const config = (admitted: AdmittedPod, name: string, facts: Partial<ContainerFacts> = {}) =>
  containerConfig(admitted, admitted.containers.find(c => c.spec.name === name)!, FACTS, { ...CONTAINER_FACTS, ...facts })

t.test('the API server and the runner refuse what they do not accept, naming the field', async t => {
  for (const [manifest, path] of [
    [{ kind: 'Deployment', apiVersion: 'apps/v1' }, 'kind'],
    [pod({ containers: [app({ volumeDevices: [{ name: 'x', devicePath: '/dev/x' }] })] }), 'spec.containers[0].volumeDevices'],
    [pod({ containers: [app({ ports: [{ containerPort: 80, hostPort: 8080 }] })] }), 'spec.containers[0].ports[0].hostPort'],
    [pod({ containers: [app({ restartPolicy: 'Always' })] }), 'spec.containers[0].restartPolicy'],
    [pod({ initContainers: [app({ restartPolicy: 'OnFailure' })], containers: [app({ name: 'b' })] }), 'spec.initContainers[0].restartPolicy'],
    [pod({ initContainers: [app({ startupProbe: { exec: { command: ['true'] } } })], containers: [app({ name: 'b' })] }), 'spec.initContainers[0]'],
    [pod({ containers: [app({ startupProbe: { grpc: { port: 9 } } })] }), 'spec.containers[0].startupProbe.grpc'],
    [pod({ containers: [app({ lifecycle: { preStop: { tcpSocket: { port: 9 } } } })] }), 'spec.containers[0].lifecycle.preStop.tcpSocket'],
    [pod({ containers: [app({ volumeMounts: [{ name: 'missing', mountPath: '/m' }] })] }), 'spec.containers[0].volumeMounts[0].name'],
    [pod({ containers: [app()], volumes: [{ name: 'h', hostPath: { path: '/run' } }] }), 'spec.volumes[0].hostPath'],
    [pod({ containers: [app()], hostUsers: false }), 'spec.hostUsers'],
    [pod({ containers: [app({ securityContext: { seLinuxOptions: { level: 's0' } } })] }), 'spec.containers[0].securityContext.seLinuxOptions'],
    [pod({ containers: [app(), app()] }), 'spec.containers[1].name'],
    [pod({ containers: [app({ image: 7 })] }), '(schema)'],
  ] as const) {
    t.throws(() => admitPod(manifest), new ManifestError(path, ''), path)
    t.throws(() => admitPod(manifest), { message: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `) })
  }
  const admitted = admitPod(
    pod({ containers: [app({ imagePullPolicy: 'Always', readinessProbe: { exec: { command: ['true'] } } })], tolerations: [] }),
  )
  t.same(
    admitted.notes,
    [
      'spec.tolerations: scheduling only',
      'spec.containers[0].imagePullPolicy: the runner never pulls: images come from the node',
      'spec.containers[0].readinessProbe: not run: readiness only gates Services, and starts nothing',
    ],
    'fields that change nothing on one node are accepted and listed, with why',
  )
})

t.test('every example and every pod the chart renders is admitted, with each container in its role', async t => {
  for (const [file, roles] of [
    ['pod.yaml', ['init', 'app', 'app']],
    ['pod-mark.yaml', ['init', 'app', 'app']],
    ['pod-cni.yaml', ['init', 'app', 'app']],
  ] as const) {
    t.same(
      admitPod(example(file)).containers.map(c => c.role),
      roles,
      file,
    )
  }
  for (const [kube, set, roles] of [
    ['1.28', 'demo.enabled=true', ['init', 'app', 'app']],
    ['1.29', 'demo.enabled=true', ['init', 'sidecar', 'app']],
    ['1.33', 'demo.enabled=true,method=mark', ['init', 'sidecar', 'app']],
    ['1.33', 'demo.enabled=true,cni.enabled=true', ['init', 'sidecar', 'app']],
  ] as const) {
    const rendered = await helm('template', 'sr', `${ROOT}charts/sidecar-redirect`, '--kube-version', kube, '--set', set)
    t.equal(rendered.exitCode, 0, 'helm template', { output: rendered.output })
    t.same(
      admitPod(podsOf(rendered.output)[0]).containers.map(c => c.role),
      roles,
      `the chart on ${kube} with ${set}`,
    )
  }
})

t.test('the sandbox config: metadata, labels, annotations, namespaces, DNS and the pod-level security context', async t => {
  const admitted = admitPod({
    ...example('pod-cni.yaml'),
    metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' }, annotations: { a: 'b' } },
  })
  const sandbox = sandboxConfig(admitted, FACTS)
  t.same(sandbox.metadata, { name: 'web', uid: 'uid-1', namespace: 'shop', attempt: 0 })
  t.equal(sandbox.hostname, 'web')
  t.same(sandbox.labels, { app: 'web', 'io.kubernetes.pod.name': 'web', 'io.kubernetes.pod.namespace': 'shop', 'io.kubernetes.pod.uid': 'uid-1' })
  t.same(
    sandbox.annotations,
    { a: 'b', 'kubernetes.io/config.seen': FACTS.seen, 'kubernetes.io/config.source': 'api' },
    "the pod's annotations, and the kubelet's",
  )
  t.same(sandbox.linux.security_context.namespace_options, { network: 'POD', pid: 'CONTAINER', ipc: 'POD' })
  t.equal(sandbox.linux.cgroup_parent, FACTS.cgroupParent)
  t.same(
    sandbox.dns_config,
    { servers: ['192.0.2.53'], searches: ['example.test'], options: ['edns0'] },
    "ClusterFirst without cluster DNS: the node's resolv.conf",
  )
  const clustered = { ...FACTS, clusterDns: { servers: ['198.19.0.10'], domain: 'cluster.local' } }
  t.same(
    dnsOf(admitted, clustered),
    { servers: ['198.19.0.10'], searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'example.test'], options: ['ndots:5'] },
    'ClusterFirst with cluster DNS',
  )
  const custom = admitPod(
    pod({
      containers: [app()],
      dnsPolicy: 'None',
      dnsConfig: { nameservers: ['192.0.2.1'], searches: ['a.test'], options: [{ name: 'ndots', value: '2' }, { name: 'rotate' }] },
      hostNetwork: true,
      securityContext: { runAsUser: 5, fsGroup: 7, supplementalGroups: [8], sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }] },
    }),
  )
  t.same(
    dnsOf(custom, clustered),
    { servers: ['192.0.2.1'], searches: ['a.test'], options: ['ndots:2', 'rotate'] },
    'dnsPolicy None takes dnsConfig only',
  )
  const hostNet = sandboxConfig(custom, FACTS)
  t.same(
    [hostNet.hostname, hostNet.dns_config, hostNet.linux.security_context.namespace_options.network],
    ['node-1', undefined, 'NODE'],
    'hostNetwork',
  )
  t.match(hostNet.linux, {
    security_context: { run_as_user: { value: 5 }, supplemental_groups: [8, 7] },
    sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
  })
})

t.test("the chart's init container maps to exactly the CRI security context and resources the kubelet sends", async t => {
  const rendered = await helm('template', 'sr', `${ROOT}charts/sidecar-redirect`, '--kube-version', '1.29', '--set', 'demo.enabled=true')
  const admitted = admitPod(podsOf(rendered.output)[0])
  const init = config(admitted, 'sidecar-redirect')
  t.same(init.linux.security_context, {
    capabilities: { add_capabilities: ['NET_ADMIN', 'NET_RAW'], drop_capabilities: ['ALL'] },
    privileged: false,
    namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' },
    run_as_user: { value: 0 },
    readonly_rootfs: true,
    supplemental_groups: [],
    no_new_privs: true,
    masked_paths: MASKED_PATHS,
    readonly_paths: READONLY_PATHS,
    seccomp: { profile_type: 'RuntimeDefault' },
  })
  t.equal(qosOf(admitted), 'Burstable', 'requests without matching limits everywhere: Burstable')
  t.same(
    init.linux.resources,
    // 10m: 10 shares; 128Mi limit; 1000 - 1000 * 32Mi / 8Gi = 997 (rounded down by integer division).
    { cpu_period: 0, cpu_quota: 0, cpu_shares: 10, memory_limit_in_bytes: 128 * 2 ** 20, oom_score_adj: 997 },
  )
  t.same(init.args, ['init'])
  t.same(init.envs.slice(0, 2), [
    { key: 'ISTIO_PROXY_PORT', value: '5001' },
    { key: 'ISTIO_PROXY_UID', value: '1337' },
  ])
  t.same(init.mounts, [
    { container_path: '/etc/hosts', host_path: '/pod/etc-hosts', readonly: false, propagation: 'PROPAGATION_PRIVATE' },
    { container_path: '/dev/termination-log', host_path: '/pod/termination-log', readonly: false, propagation: 'PROPAGATION_PRIVATE' },
  ])
  t.equal(init.log_path, 'sidecar-redirect/0.log')
  const proxy = admitted.containers.find(c => c.spec.name === 'proxy')!
  t.same(startupProbeOf(proxy), {
    action: { exec: ['/app/entrypoint', 'ready'] },
    initialDelaySeconds: 0,
    periodSeconds: 1,
    timeoutSeconds: 35,
    failureThreshold: 1,
  })
  t.match(config(admitted, 'proxy').linux.security_context, { run_as_user: { value: 1337 }, run_as_group: { value: 1337 }, no_new_privs: true })
})

t.test('runAsNonRoot, env sources and volumes fail as the kubelet fails them (CreateContainerConfigError)', async t => {
  const nonRoot = (sc: Record<string, unknown>) => admitPod(pod({ containers: [app({ securityContext: { runAsNonRoot: true, ...sc } })] }))
  t.throws(() => config(nonRoot({ runAsUser: 0 }), 'app'), new ContainerConfigError(''), 'runAsUser 0')
  t.throws(() => config(nonRoot({}), 'app'), { message: /image will run as root/ }, 'an image without a user runs as root')
  t.throws(() => config(nonRoot({}), 'app', { imageUser: { username: 'nobody' } }), { message: /non-numeric user \(nobody\)/ })
  t.same(
    config(nonRoot({}), 'app', { imageUser: { uid: 65532, username: '' } }).linux.security_context.run_as_user,
    { value: 65532 },
    "the image's uid",
  )
  const missing = admitPod(pod({ containers: [app({ env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'settings', key: 'nope' } } }] })] }))
  t.throws(() => config(missing, 'app'), { message: /couldn't find key nope in configMap "settings"/ })
  const fromMap = admitPod(pod({ containers: [app({ envFrom: [{ configMapRef: { name: 'settings' }, prefix: 'P_' }] })] }))
  t.same(config(fromMap, 'app').envs, [
    { key: 'P_MODE', value: 'fast' },
    { key: 'P_proxy.yaml', value: 'port: 1' },
  ])
  const volumes = admitPod(
    pod(
      {
        containers: [app()],
        volumes: [
          { name: 'work', emptyDir: { medium: 'Memory' } },
          { name: 'info', downwardAPI: { items: [{ path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } }] } },
          { name: 'conf', configMap: { name: 'settings', items: [{ key: 'proxy.yaml', path: 'p.yaml', mode: 0o600 }] } },
          {
            name: 'all',
            projected: {
              sources: [{ configMap: { name: 'settings' } }, { downwardAPI: { items: [{ path: 'uid', fieldRef: { fieldPath: 'metadata.uid' } }] } }],
            },
          },
        ],
      },
      { name: 'p', annotations: { b: 'two "quoted"', a: 'one' } },
    ),
  )
  t.same(volumePlans(volumes, FACTS, CONTAINER_FACTS), [
    { name: 'work', kind: 'emptyDir', files: [] },
    { name: 'info', kind: 'files', files: [{ path: 'annotations', mode: 0o644, content: 'a="one"\nb="two \\"quoted\\""' }] },
    { name: 'conf', kind: 'files', files: [{ path: 'p.yaml', content: 'port: 1', mode: 0o600 }] },
    {
      name: 'all',
      kind: 'files',
      files: [
        { path: 'MODE', content: 'fast', mode: 0o644 },
        { path: 'proxy.yaml', content: 'port: 1', mode: 0o644 },
        { path: 'uid', mode: 0o644, content: 'uid-1' },
      ],
    },
  ])
  t.throws(() => volumePlans(volumes, FACTS, { configMaps: {}, secrets: {} }), { message: /configMap "settings" not found/ })
})

t.test('$(VAR) expansion, quantities and QoS classes follow Kubernetes', async t => {
  const vars: Record<string, string> = { A: 'x', B_2: 'y' }
  for (const [input, output] of [
    ['$(A)', 'x'],
    ['$(A)-$(B_2)', 'x-y'],
    ['$$(A)', '$(A)'],
    ['$$$(A)', '$x'],
    ['$(MISSING)', '$(MISSING)'],
    ['$A', '$A'],
    ['$(A', '$(A'],
  ] as const) {
    t.equal(
      expandVars(input, name => vars[name]),
      output,
      input,
    )
  }
  for (const [input, value] of [
    ['10m', 0.01],
    ['1', 1],
    ['1.5', 1.5],
    ['128Mi', 128 * 2 ** 20],
    ['1G', 1e9],
    ['1e3', 1000],
  ] as const) {
    t.equal(parseQuantity(input, 'x'), value, input)
  }
  t.throws(() => parseQuantity('12 MB', 'spec.x'), new ManifestError('spec.x', ''))
  const withResources = (...resources: Record<string, unknown>[]) =>
    admitPod(pod({ containers: resources.map((r, i) => app({ name: `c${i}`, resources: r })) }))
  t.equal(qosOf(withResources({}, {})), 'BestEffort')
  t.equal(qosOf(withResources({ limits: { cpu: '1', memory: '1Gi' } })), 'Guaranteed', 'requests default to limits')
  t.equal(qosOf(withResources({ limits: { cpu: '1', memory: '1Gi' } }, {})), 'Burstable')
  t.same(config(withResources({ limits: { cpu: '250m', memory: '1Gi' } }), 'c0').linux.resources, {
    cpu_period: 100_000,
    cpu_quota: 25_000,
    cpu_shares: 256,
    memory_limit_in_bytes: 2 ** 30,
    oom_score_adj: -997,
  })
})
