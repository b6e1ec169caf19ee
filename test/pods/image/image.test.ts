// The image in a real pod: podman kube play runs the pod specs docs/getting-started.md shows (the same files, named
// for this run) on a test network of its own, next to a remote server pod, and traffic decides. Needs the image built by
// scripts/image/build.sh (npm run test:image does both).
import { readFileSync } from 'node:fs'
import t from 'tap'
import { runForStatus } from '../../../src/exec/processes.js'
import { CAP_NET_ADMIN } from '../../../src/privilege/status.js'
import {
  addressOf,
  expectCapturedPod,
  IMAGE,
  NETWORK,
  networkSubnet,
  playInOrder,
  podFile,
  podman,
  prepareNetwork,
  REMOTE,
  REMOTE_SPEC,
  ROOT,
  runSpec,
  unique,
} from '../../helpers/podman.js'

const DEMO = unique('sidecar-demo')

// Every pod is started in the kubelet's order and waited for as the kubelet would (playInOrder): the remote until
// its startupProbe passes, the app until the proxy's postStart hold returns. Playing them and connecting at once
// raced both, and failed about one run in four.
t.before(async () => {
  await prepareNetwork(t, ['sidecar-demo', 'sidecar-remote'])
  await playInOrder(t, REMOTE_SPEC)
})

t.test('docs/getting-started.md shows the pod specs the test plays, verbatim', async t => {
  const page = readFileSync(`${ROOT}docs/getting-started.md`, 'utf8')
  for (const file of ['examples/pod.yaml', 'examples/pod-mark.yaml']) t.ok(page.includes(readFileSync(`${ROOT}${file}`, 'utf8')), file)
})

for (const [method, file, caps] of [
  ['uid', 'examples/pod.yaml', 0n],
  ['mark', 'examples/pod-mark.yaml', 1n << BigInt(CAP_NET_ADMIN)],
] as const) {
  t.test(`${method}: in a real pod, app traffic goes through the unprivileged proxy both ways`, async t => {
    await expectCapturedPod(t, await playInOrder(t, `${ROOT}${file}`), caps)
  })

  t.test(`${method}: held until the proxy listens, an app's first connection, made as it starts, goes through it`, async t => {
    const remote = await addressOf(REMOTE)
    const connect = `["/usr/local/bin/node", "/app/dist/peer.mjs", "connect", "${remote}", "9090"]`
    const eager = podFile(
      'sr-image',
      readFileSync(`${ROOT}${file}`, 'utf8')
        .replace('["/usr/local/bin/node", "/app/dist/peer.mjs", "serve", "app=[::]:8080"]', connect)
        .replace('restartPolicy: OnFailure', 'restartPolicy: Never'),
    )
    await playInOrder(t, eager)
    t.equal(await podman('wait', `${DEMO}-app`), '0', 'the app exited 0')
    t.match(await podman('logs', `${DEMO}-app`), /"ok":true,"reply":\{"label":"remote"/, 'answered by the remote')
    t.match(await podman('logs', `${DEMO}-proxy`), `"relayed":{"from":"${await addressOf(DEMO)}","to":"${remote}:9090"}`, 'through the proxy')
  })
}

t.test('a broken setting fails the init container with exit 2, and the pod never starts', async t => {
  const spec = readFileSync(`${ROOT}examples/pod.yaml`, 'utf8')
  // Never: otherwise the failing init container would be restarted, as the policy says.
  const { file: broken } = runSpec(
    podFile('sr-image', spec.replace('value: "5001" }', 'value: "70000" }').replace('restartPolicy: OnFailure', 'restartPolicy: Never')),
  )
  t.teardown(() => runForStatus('podman', ['kube', 'down', broken]))
  const played = await runForStatus('podman', ['kube', 'play', '--network', NETWORK, broken])
  t.not(played.exitCode, 0, 'kube play fails')
  t.match(played.output, /init container .* exited with code 2/)
  t.match(await podman('logs', `${DEMO}-sidecar-redirect`), 'ISTIO_PROXY_PORT="70000" is not valid: expected a TCP port from 1 to 65535')
  const states = await podman('ps', '-a', '--filter', `pod=${DEMO}`, '--format', '{{.Names}} {{.State}}')
  t.match(states, new RegExp(`${DEMO}-app (created|configured)`, 'i'), 'the app container never ran')
  t.match(states, new RegExp(`${DEMO}-proxy (created|configured)`, 'i'), 'the proxy container never ran')
})

t.test("getting started's local run: init joins a running app container's network namespace", async t => {
  const app = unique('sr-local-app')
  await runForStatus('podman', ['rm', '-f', app])
  await podman(
    'run',
    '-d',
    '--name',
    app,
    '--network',
    NETWORK,
    '--user',
    '1000',
    '--entrypoint',
    '/usr/local/bin/node',
    IMAGE,
    '/app/dist/peer.mjs',
    'serve',
    'app=[::]:8080',
  )
  t.teardown(() => runForStatus('podman', ['rm', '-f', app]))
  // --read-only-tmpfs=false: no writable /run or /tmp either, as with Kubernetes' readOnlyRootFilesystem.
  const base = [
    'run',
    '--rm',
    '--cap-drop',
    'ALL',
    '--cap-add',
    'NET_ADMIN',
    '--cap-add',
    'NET_RAW',
    '--read-only',
    '--read-only-tmpfs=false',
    '--network',
    `container:${app}`,
    IMAGE,
  ]
  const init = await runForStatus('podman', base)
  t.equal(init.exitCode, 0, { output: init.output })
  t.match(init.output, /sidecar-redirect init: ok/)
  const verify = await runForStatus('podman', [...base, 'verify', '--verify', 'rules'])
  t.equal(verify.exitCode, 0, 'verify, run the same way, finds the rules exactly', { output: verify.output })
})

t.test('every backend works on a read-only root: the explicit method on nftables, iptables-nft and iptables-legacy', async t => {
  const initReadOnly = (env: Record<string, string>) =>
    runForStatus('podman', [
      ...['run', '--rm', '--network', NETWORK, '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW'],
      ...['--read-only', '--read-only-tmpfs=false', ...Object.entries(env).flatMap(([name, value]) => ['-e', `${name}=${value}`])],
      IMAGE,
    ])
  for (const backend of ['nftables', 'iptables-nft', 'iptables-legacy']) {
    const run = await initReadOnly({
      ISTIO_BACKEND: backend,
      ISTIO_OUTBOUND_METHOD: 'explicit',
      ISTIO_SERVICES: `${networkSubnet()},198.18.0.10:443`,
    })
    t.equal(run.exitCode, 0, `${backend}: init exits 0`, { output: run.output })
    t.match(run.output, /read back exactly as planned/)
  }
  // TPROXY's policy routing is written with the image's own `ip`, and read back exactly like the rules.
  const tproxy = await initReadOnly({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_VERIFY: 'rules' })
  t.equal(tproxy.exitCode, 0, 'TPROXY: init exits 0', { output: tproxy.output })
  t.match(tproxy.output, /read back exactly as planned/)
})

t.test('the agent in the image drains on SIGTERM: a proxy that exits is waited for, one that ignores it is killed', async t => {
  for (const [what, script, code, drained] of [
    ['exits on SIGTERM after draining', "process.on('SIGTERM', () => setTimeout(() => process.exit(0), 500)); setInterval(() => {}, 1000)", 0, false],
    ['ignores SIGTERM', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)", 137, true],
  ] as const) {
    const name = unique('sr-drain')
    await runForStatus('podman', ['rm', '-f', name])
    t.teardown(() => runForStatus('podman', ['rm', '-f', name]))
    await podman(
      'run',
      '-d',
      '--name',
      name,
      '--user',
      '1337',
      '--cap-drop',
      'ALL',
      '--read-only',
      '-e',
      'ISTIO_DRAIN_SECONDS=2',
      IMAGE,
      'run',
      '--',
      '/usr/local/bin/node',
      '-e',
      script,
    )
    // The agent logs the proxy's start once it has spawned it: only then does SIGTERM reach a proxy.
    for (let i = 0; i < 100 && !(await podman('logs', name)).includes('proxy started'); i++) await new Promise(resolve => setTimeout(resolve, 100))
    // podman stop sends SIGTERM to the agent (PID 1) and waits up to -t seconds before its own SIGKILL.
    await podman('stop', '-t', '30', name)
    t.equal(await podman('inspect', name, '--format', '{{.State.ExitCode}}'), String(code), `${what}: exit ${code}`)
    const logs = await podman('logs', name)
    t.equal(
      logs.includes('did not exit within 2000 ms of SIGTERM: killing it'),
      drained,
      `${what}: ${drained ? 'killed after the drain time' : 'not killed'}`,
    )
    await runForStatus('podman', ['rm', '-f', name])
  }
})

t.test('the image ships a warm compile cache, used from a read-only root: no module of the start-up path is compiled afresh', async t => {
  for (const command of ['plan', 'validate']) {
    // NODE_DEBUG_NATIVE prints what Node's compile cache does with each module it loads.
    const result = await runForStatus('podman', [
      'run',
      '--rm',
      '--read-only',
      '--network',
      'none',
      '-e',
      'NODE_DEBUG_NATIVE=COMPILE_CACHE',
      IMAGE,
      command,
    ])
    const accepted = [...result.output.matchAll(/V8 code cache for ESM file:\/\/(\S+) was accepted/g)].map(m => m[1])
    t.ok(accepted.includes('/app/dist/cli.mjs'), `${command}: the bundle's entry comes from the cache`)
    // plan: cli.mjs and the two files of its static graph (test/unit/project/bundle.test.ts); validate: those, its own and the probe's.
    t.ok(accepted.length >= 3, `${command}: ${accepted.length} modules from the cache`)
    t.notMatch(result.output, /was not initialized|was rejected|mismatch/, `${command}: every module it loaded was in the cache`)
  }
})
