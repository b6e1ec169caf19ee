// The pod runner's own behaviour on a real containerd: the kubelet's order (init containers one at a time, a failing
// one stopping the pod; a native sidecar's startup probe, exec or tcpSocket, holding what comes after it; the stop
// order with preStop hooks), and the kubelet's mapping of securityContext, env, args and volumes to what the
// process really gets, read from /proc and from inside the container. The containers run the project's image,
// with small Node.js programs in place of real ones (the image has no shell).
import t, { type Test } from 'tap'
import { IMAGE, type Node, startNode, type ContainerReport, type Pod, type PodEvent, runPod } from '../helpers/cri/index.js'
import { readStatus } from '../../src/privilege/status.js'
import { kernelAvailable } from '../helpers/kernel.js'

const node = (code: string): string[] => ['/usr/local/bin/node', '-e', code]
// Runs for ever; on SIGTERM logs it, waits `ms`, and exits 0: a container that takes its time to stop.
const lingering = (ms: number, more = ''): string[] =>
  node(
    `${more}; process.on('SIGTERM', () => { console.log('SIGTERM at ' + Date.now()); setTimeout(() => process.exit(0), ${ms}) }); setInterval(() => {}, 1000)`,
  )
const workVolume = { name: 'work', emptyDir: {} }
const mountWork = [{ name: 'work', mountPath: '/work' }]

const podOf = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'runner' }, spec })
const byName = (reports: readonly ContainerReport[]): Record<string, ContainerReport> => Object.fromEntries(reports.map(r => [r.name, r]))
const eventsOf = (pod: Pod, type: PodEvent['type'], container?: string) =>
  pod.events.filter(e => e.type === type && (!container || e.container === container))

// One node for the file; each test stops its own pods.
let shared: Node | undefined
t.before(async () => {
  if (process.getuid?.() === 0) shared = await startNode(t)
})
const nodeFor = (_t: Test): Node => shared!

t.test('init containers run one at a time, in order, before anything else; one that exits non-zero stops the pod as Init:Error', async t => {
  if (!kernelAvailable(t)) return
  const ok = await runPod(
    nodeFor(t),
    podOf('inits-ok', {
      restartPolicy: 'Never',
      volumes: [workVolume],
      initContainers: [
        {
          name: 'first',
          image: IMAGE,
          volumeMounts: mountWork,
          command: node(`setTimeout(() => require('fs').writeFileSync('/work/first', 'done'), 500)`),
        },
        {
          name: 'second',
          image: IMAGE,
          volumeMounts: mountWork,
          command: node(`process.exit(require('fs').readFileSync('/work/first', 'utf8') === 'done' ? 0 : 3)`),
        },
      ],
      containers: [{ name: 'app', image: IMAGE, volumeMounts: mountWork, command: lingering(0) }],
    }),
  )
  t.equal(ok.status, 'Running')
  const reports = byName(await ok.containers())
  t.same([reports['first']!.exitCode, reports['second']!.exitCode, reports['app']!.state], [0, 0, 'running'])
  t.ok(reports['second']!.startedAt! >= reports['first']!.finishedAt!, 'second started after first had exited')
  t.ok(reports['app']!.startedAt! >= reports['second']!.finishedAt!, 'the app started after the last init container had exited')
  await ok.stop({ gracePeriodSeconds: 2 })

  const failing = await runPod(
    nodeFor(t),
    podOf('inits-fail', {
      restartPolicy: 'Never',
      initContainers: [
        { name: 'first', image: IMAGE, command: node('process.exit(0)') },
        { name: 'second', image: IMAGE, command: node('console.log("failing on purpose"); process.exit(7)') },
        { name: 'third', image: IMAGE, command: node('process.exit(0)') },
      ],
      containers: [{ name: 'app', image: IMAGE, command: lingering(0) }],
    }),
  )
  t.equal(failing.status, 'Init:Error')
  t.same(failing.failure, { container: 'second', message: 'exited 7' })
  const after = byName(await failing.containers())
  t.same(
    Object.values(after).map(r => [r.name, r.state, r.exitCode ?? null]),
    [
      ['first', 'exited', 0],
      ['second', 'exited', 7],
      ['third', 'not created', null],
      ['app', 'not created', null],
    ],
    'nothing after the failing init container was created',
  )
  t.same(failing.logs('second'), ['failing on purpose'], "the failing container's log is kept")
  await failing.stop()
})

t.test('a native sidecar holds what comes after it until its startup probe passes (exec, then tcpSocket), and keeps running', async t => {
  if (!kernelAvailable(t)) return
  let released = false
  const pod = await runPod(
    nodeFor(t),
    podOf('sidecars', {
      volumes: [workVolume],
      initContainers: [
        {
          name: 'exec-probed',
          image: IMAGE,
          restartPolicy: 'Always',
          volumeMounts: mountWork,
          command: lingering(0),
          // Passes once the test has written /work/ready, after the second failure.
          startupProbe: {
            exec: { command: node(`process.exit(require('fs').existsSync('/work/ready') ? 0 : 1)`) },
            periodSeconds: 1,
            failureThreshold: 30,
          },
        },
        {
          name: 'tcp-probed',
          image: IMAGE,
          restartPolicy: 'Always',
          // Listens only 1.5 s after it starts.
          command: lingering(0, `setTimeout(() => require('net').createServer(s => s.end()).listen(7000), 1500)`),
          ports: [{ name: 'admin', containerPort: 7000 }],
          startupProbe: { tcpSocket: { port: 'admin' }, periodSeconds: 1, failureThreshold: 30 },
        },
        {
          name: 'http-probed',
          image: IMAGE,
          restartPolicy: 'Always',
          // Answers 503 to its first request, then 200, logging what it was asked.
          command: lingering(
            0,
            `let n = 0; require('http').createServer((q, s) => { console.log(q.url + ' ' + q.headers['user-agent'] + ' ' + q.headers['x-probe']); s.statusCode = ++n < 2 ? 503 : 200; s.end() }).listen(7001)`,
          ),
          startupProbe: {
            httpGet: { port: 7001, path: '/healthz', httpHeaders: [{ name: 'X-Probe', value: 'startup' }] },
            periodSeconds: 1,
            failureThreshold: 30,
          },
          lifecycle: { preStop: { sleep: { seconds: 1 } } },
        },
        { name: 'after', image: IMAGE, command: node('process.exit(0)') },
      ],
      containers: [{ name: 'app', image: IMAGE, command: lingering(0) }],
    }),
    {
      onEvent: async (event, pod) => {
        if (event.type === 'ProbeFailed' && event.container === 'exec-probed' && event.message?.startsWith('2/') && !released) {
          released = true
          await pod.exec('exec-probed', node(`require('fs').writeFileSync('/work/ready', '')`))
        }
      },
    },
  )
  t.equal(pod.status, 'Running')
  const r = byName(await pod.containers())
  const passed = (name: string) => eventsOf(pod, 'ProbePassed', name)[0]?.at ?? Number.POSITIVE_INFINITY
  t.equal(eventsOf(pod, 'ProbeFailed', 'exec-probed').length, 2, 'the exec probe failed twice, until the file was there')
  t.ok(eventsOf(pod, 'ProbeFailed', 'tcp-probed').length >= 1, 'the tcpSocket probe failed while nothing listened')
  t.ok(r['tcp-probed']!.createdAt! >= passed('exec-probed'), 'the next sidecar was created only after the first one started')
  t.ok(r['http-probed']!.createdAt! >= passed('tcp-probed'), 'the third sidecar was created only after the second one started')
  t.same(
    eventsOf(pod, 'ProbeFailed', 'http-probed').map(e => e.message),
    ['1/30: HTTP 503'],
    'the httpGet probe failed on the 503, and passed on the 200',
  )
  t.same(
    pod.logs('http-probed').slice(0, 2),
    ['/healthz kube-probe/1.29 startup', '/healthz kube-probe/1.29 startup'],
    "the kubelet's request: path, user agent, headers",
  )
  t.ok(r['after']!.createdAt! >= passed('http-probed'), 'the next init container was created only after the last sidecar started')
  t.ok(r['app']!.startedAt! >= r['after']!.finishedAt!, 'the app started after the init phase')
  t.same(
    [r['exec-probed']!.state, r['tcp-probed']!.state, r['http-probed']!.state, r['app']!.state],
    ['running', 'running', 'running', 'running'],
    'the sidecars keep running beside the app',
  )
  const stopAt = Date.now()
  await pod.stop({ gracePeriodSeconds: 5 })
  const slept = eventsOf(pod, 'PreStopDone', 'http-probed')[0]
  t.equal(slept?.message, 'slept 1 s', 'a sleep preStop hook')
  t.ok((slept?.at ?? 0) - stopAt >= 1000, '... that took its second')

  const held = await runPod(
    nodeFor(t),
    podOf('held', {
      initContainers: [
        {
          name: 'never-ready',
          image: IMAGE,
          restartPolicy: 'Always',
          command: lingering(0),
          startupProbe: { exec: { command: node('process.exit(1)') }, periodSeconds: 1, failureThreshold: 2 },
        },
      ],
      containers: [{ name: 'app', image: IMAGE, command: lingering(0) }],
    }),
  )
  t.equal(held.status, 'Init:StartupProbeFailed')
  t.equal(eventsOf(held, 'ProbeFailed', 'never-ready').length, 2, 'it failed failureThreshold times')
  t.equal((await held.container('app')).state, 'not created', 'the app never started')
  await held.stop({ gracePeriodSeconds: 2 })
})

t.test('stop follows the kubelet: preStop hooks first, the app containers, then the sidecars last-started first', async t => {
  if (!kernelAvailable(t)) return
  const preStop = (name: string) => ({ exec: { command: node(`require('fs').writeFileSync('/work/prestop-${name}', String(Date.now()))`) } })
  // On SIGTERM each container logs whether its preStop hook had already run, then takes 1 s to exit.
  const container = (name: string, sidecar: boolean) => ({
    name,
    image: IMAGE,
    volumeMounts: mountWork,
    ...(sidecar && { restartPolicy: 'Always' }),
    lifecycle: { preStop: preStop(name) },
    command: node(
      `process.on('SIGTERM', () => { console.log('preStop ran first: ' + require('fs').existsSync('/work/prestop-${name}')); setTimeout(() => process.exit(0), 1000) }); console.log('ready'); setInterval(() => {}, 1000)`,
    ),
  })
  const pod = await runPod(
    nodeFor(t),
    podOf('stop-order', {
      terminationGracePeriodSeconds: 20,
      volumes: [workVolume],
      initContainers: [container('sidecar-1', true), container('sidecar-2', true)],
      containers: [container('app-1', false), container('app-2', false)],
    }),
  )
  t.equal(pod.status, 'Running')
  // A container's first process is PID 1 of its namespace: until it handles SIGTERM, the signal is ignored.
  for (const name of ['sidecar-1', 'sidecar-2', 'app-1', 'app-2']) await pod.waitForLog(name, 'ready')
  const final = byName(await pod.stop())
  for (const name of ['sidecar-1', 'sidecar-2', 'app-1', 'app-2']) {
    t.same(pod.logs(name), ['ready', 'preStop ran first: true'], `${name}: its preStop hook ran before the stop signal`)
    t.equal(final[name]!.exitCode, 0, `${name} exited 0 on SIGTERM, within its grace period`)
  }
  const lastApp = Math.max(final['app-1']!.finishedAt!, final['app-2']!.finishedAt!)
  t.ok(final['sidecar-2']!.stopRequestedAt! >= lastApp, 'the last-started sidecar was stopped only after every app container had exited')
  t.ok(final['sidecar-1']!.stopRequestedAt! >= final['sidecar-2']!.finishedAt!, 'the first sidecar was stopped only after the second had exited')
  t.ok(Math.abs(final['app-1']!.stopRequestedAt! - final['app-2']!.stopRequestedAt!) < 1000, 'the app containers were stopped together')
  const order = pod.events.filter(e => e.type === 'Stopping').map(e => e.container)
  t.same(
    [order.slice(0, 2).sort(), order.slice(2)],
    [
      ['app-1', 'app-2'],
      ['sidecar-2', 'sidecar-1'],
    ],
    'the stop requests, in order',
  )
})

t.test('securityContext, env, args and volumes reach the process as the kubelet maps them', async t => {
  if (!kernelAvailable(t)) return
  // The container reports what it sees from inside, once, then keeps running for the host-side reads.
  const inside = `
    const fs = require('fs')
    const status = Object.fromEntries(fs.readFileSync('/proc/self/status', 'utf8').trim().split('\\n').map(l => l.split(':\\t')))
    let rootWrite
    try { fs.writeFileSync('/x', ''); rootWrite = 'ok' } catch (e) { rootWrite = e.code }
    fs.writeFileSync('/work/mine', '')
    console.log(JSON.stringify({
      argv: process.argv.slice(1),
      env: { PLAIN: process.env.PLAIN, POD: process.env.POD, NS: process.env.NS, IP: process.env.IP, LABEL: process.env.LABEL, MEM: process.env.MEM, NESTED: process.env.NESTED },
      status: { Uid: status.Uid, Gid: status.Gid, Groups: status.Groups.trim(), NoNewPrivs: status.NoNewPrivs, Seccomp: status.Seccomp },
      rootWrite,
      workGroup: fs.statSync('/work/mine').gid,
      labels: fs.readFileSync('/info/labels', 'utf8'),
      name: fs.readFileSync('/info/name', 'utf8'),
    }))
    setInterval(() => {}, 1000)`
  const pod = await runPod(nodeFor(t), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'mapping', namespace: 'runner', labels: { app: 'mapping', tier: 'test' } },
    spec: {
      securityContext: { runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000], seccompProfile: { type: 'RuntimeDefault' } },
      volumes: [
        workVolume,
        {
          name: 'info',
          downwardAPI: {
            items: [
              { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
              { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
            ],
          },
        },
      ],
      containers: [
        {
          name: 'probe',
          image: IMAGE,
          command: ['/usr/local/bin/node', '-e', inside],
          args: ['$(PLAIN)', '$$(PLAIN)', '$(UNSET)'],
          env: [
            { name: 'PLAIN', value: 'plain' },
            { name: 'NESTED', value: 'from-$(PLAIN)' },
            { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
            { name: 'LABEL', valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } } },
            { name: 'MEM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
          ],
          resources: { limits: { memory: '256Mi' } },
          volumeMounts: [...mountWork, { name: 'info', mountPath: '/info', readOnly: true }],
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] },
          },
        },
      ],
    },
  })
  t.equal(pod.status, 'Running')
  await pod.waitForLog('probe', '"argv"')
  const seen = JSON.parse(pod.logs('probe').find(line => line.startsWith('{'))!)
  t.same(seen.argv, ['plain', '$(PLAIN)', '$(UNSET)'], 'args: $(VAR) expanded, $$ escaped, an unknown reference kept')
  t.same(
    seen.env,
    { PLAIN: 'plain', POD: 'mapping', NS: 'runner', IP: pod.ips[0], LABEL: 'test', MEM: '256', NESTED: 'from-plain' },
    'env: values, fieldRefs (status.podIP from the sandbox), a label, a resourceFieldRef, an expanded reference',
  )
  t.same(
    seen.status,
    { Uid: '1000\t1000\t1000\t1000', Gid: '3000\t3000\t3000\t3000', Groups: '2000 3000 4000', NoNewPrivs: '1', Seccomp: '2' },
    'runAsUser, runAsGroup, fsGroup and supplementalGroups; no_new_privs; seccomp RuntimeDefault (filter mode)',
  )
  t.equal(seen.rootWrite, 'EROFS', 'readOnlyRootFilesystem')
  t.equal(seen.workGroup, 2000, 'a file made in the emptyDir belongs to fsGroup (setgid directory)')
  t.equal(seen.labels, 'app="mapping"\ntier="test"', 'downward API labels file, in the kubelet format')
  t.equal(seen.name, 'mapping')
  const report = await pod.container('probe')
  const fromHost = readStatus(report.pid!)
  t.same(
    [fromHost.capEff, fromHost.capPrm, fromHost.capInh, fromHost.capAmb, fromHost.capBnd],
    [0n, 0n, 0n, 0n, 1n << 10n],
    'capabilities from the host: NET_BIND_SERVICE stays in the bounding set only; a non-root process gets none effective',
  )
  t.same(report.startStatus?.capBnd, 1n << 10n, "the runner's own read at start agrees")
  t.same(report.runtime?.capabilities.bounding, ['CAP_NET_BIND_SERVICE'], 'what containerd told runc')
  t.match(report.runtime, { uid: 1000, gid: 3000, noNewPrivileges: true, readonlyRootfs: true, seccomp: true })
  await pod.stop({ gracePeriodSeconds: 2 })

  const nonRoot = await runPod(
    nodeFor(t),
    podOf('non-root', {
      containers: [
        { name: 'app', image: IMAGE, command: lingering(0), securityContext: { runAsNonRoot: true } },
        { name: 'other', image: IMAGE, command: lingering(0) },
      ],
    }),
  )
  t.equal(nonRoot.status, 'CreateContainerConfigError', 'runAsNonRoot with an image that runs as root is refused, as the kubelet refuses it')
  t.same(nonRoot.failure?.container, 'app')
  t.match(nonRoot.failure?.message, /image will run as root/)
  t.same(
    (await nonRoot.containers()).map(r => r.state),
    ['not created', 'running'],
    'the app was not created; the kubelet still starts the next app container',
  )
  const stopped = await nonRoot.stop({ gracePeriodSeconds: 2 })
  t.same(await nonRoot.containers(), stopped, 'after stop, the reports stay as they were when the pod was removed')
})

t.test('the node leaves no trace on the machine', async t => {
  if (!kernelAvailable(t) || !shared) return
  await shared.stop()
  t.same(await shared.traces(), [], 'no process, mount, cgroup, netns, link, route or rule of the node; /etc/cni and /run/containerd as they were')
})
