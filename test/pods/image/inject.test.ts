// An injected pod with a proxy image that is not ours: Debian's squid in intercept mode (scripts/image/squid.sh),
// put into a Deployment's pod template by `entrypoint inject` with the init container, then run under podman in
// the kubelet's order (test/helpers/kubelet.ts), in the native and the classic layout. The app's traffic goes
// through squid both ways: squid's own access log names each request's original destination, and the far end sees
// squid's Via header. squid runs as the proxy UID with no capability and nothing of ours in its container.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import t from 'tap'
import { runForStatus } from '../../../src/exec/processes.js'
import { readStatus } from '../../../src/privilege/status.js'
import { type Answer, HTTP_CLIENT, HTTP_SERVER } from '../../helpers/http-peers.js'
import { deployment, injectToPod } from '../../helpers/injected.js'
import { type Obj, playAsKubelet } from '../../helpers/kubelet.js'
import { addressOf, IMAGE, NETWORK, natRulesOf, podman, prepareNetwork, ROOT, runPodman, unique, waitForLog } from '../../helpers/podman.js'

const SQUID = 'localhost/sr-squid:bookworm'
const SCRATCH = mkdtempSync(`${tmpdir()}/sr-inject-pod-`)
t.teardown(() => rmSync(SCRATCH, { recursive: true, force: true }))
const REMOTE = unique('sr-inj-remote')

const fromHost = (host: string, port: number): Promise<boolean> =>
  new Promise(resolve => {
    const socket = netConnect({ host, port, timeout: 1000 })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
    socket.once('timeout', () => done(false))
  })

const fetchIn = async (container: string, url: string): Promise<Answer> =>
  JSON.parse((await runPodman(['exec', container, '/usr/local/bin/node', '-e', HTTP_CLIENT, url])).output.trim().split('\n').at(-1) ?? '{}') as Answer

t.before(async () => {
  const built = await runForStatus('bash', [`${ROOT}scripts/image/squid.sh`])
  if (built.exitCode !== 0) throw new Error(`scripts/image/squid.sh: ${built.output}`)
  await prepareNetwork(t, [])
  await runPodman(['rm', '-f', REMOTE])
  t.teardown(() => runPodman(['rm', '-f', REMOTE]))
  await podman(
    'run',
    '-d',
    '--name',
    REMOTE,
    '--network',
    NETWORK,
    '-e',
    'LABEL=remote',
    '-e',
    'PORT=9090',
    '--entrypoint',
    '/usr/local/bin/node',
    IMAGE,
    '-e',
    HTTP_SERVER,
  )
  await waitForLog(REMOTE, '"ready":true')
})

for (const layout of ['native', 'classic'] as const) {
  t.test(`mode init, ${layout} layout: squid as the user's proxy, the app's traffic through it both ways`, async t => {
    const name = unique(`sr-inj-${layout}`)
    const pod = await injectToPod(
      SCRATCH,
      deployment('web'),
      {
        ISTIO_PROXY_PORT: '3128',
        ISTIO_INJECT_IMAGE: IMAGE,
        ISTIO_INJECT_PULL_POLICY: 'Never',
        ISTIO_INJECT_PROXY_IMAGE: SQUID,
        ISTIO_INJECT_LAYOUT: layout,
      },
      name,
    )
    const proxySpec = [...(pod['spec'].initContainers ?? []), ...pod['spec'].containers].find((c: Obj) => c['name'] === 'sidecar-redirect-proxy')
    t.same(
      [proxySpec.image, proxySpec.command, proxySpec.args, proxySpec.env],
      [SQUID, undefined, undefined, undefined],
      "squid's image and entrypoint as they are",
    )
    const played = await playAsKubelet(t, pod, {
      file: `${SCRATCH}/${name}.pod.yaml`,
      network: NETWORK,
      connect: fromHost,
      address: p => addressOf(p),
    })
    t.same(
      played.steps,
      layout === 'native'
        ? ['init sidecar-redirect-init', 'sidecar sidecar-redirect-proxy', 'probe sidecar-redirect-proxy', 'start app']
        : ['init sidecar-redirect-init', 'start sidecar-redirect-proxy', 'start sidecar-redirect-hold', 'hook sidecar-redirect-hold', 'start app'],
      layout === 'native'
        ? "the kubelet's order: init, the proxy, its TCP startup probe through the pod's address, then the app"
        : 'the classic order: init last of the init containers, the proxy, the hold until it listens, then the app',
    )
    t.match(
      await natRulesOf(name),
      /-A SIDECAR_OUTBOUND .*-j REDIRECT --to-ports 3128/,
      "the init container's rules send outbound TCP to squid's port",
    )

    const proxy = Number(await podman('inspect', played.container('sidecar-redirect-proxy'), '--format', '{{.State.Pid}}'))
    const status = readStatus(proxy)
    t.same(
      [status.uids, status.capEff, status.capPrm, status.capBnd, status.noNewPrivs],
      [[1337, 1337, 1337, 1337], 0n, 0n, 0n, true],
      'squid: UID 1337 from its first process, every capability set empty, no_new_privs (read from the host)',
    )
    t.match(readFileSync(`/proc/${proxy}/cmdline`, 'utf8'), /^\/usr\/sbin\/squid\0-N\0/, 'its own entrypoint')

    await waitForLog(played.container('app'), '"ready":true')
    const remote = await podman('inspect', REMOTE, '--format', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`)
    const out = await fetchIn(played.container('app'), `http://${remote}:9090/out-${layout}`)
    t.match(
      out,
      { status: 200, body: { label: 'remote', path: `/out-${layout}`, via: /squid/ } },
      'app -> remote: answered by the remote, through squid (its Via)',
    )
    const inbound = await fetchIn(REMOTE, `http://${played.address}:8080/in-${layout}`)
    t.match(
      inbound,
      { status: 200, body: { label: 'app', path: `/in-${layout}`, via: /squid/ } },
      'remote -> app: answered by the app, through squid',
    )
    const log = await podman('logs', played.container('sidecar-redirect-proxy'))
    t.match(
      log,
      new RegExp(`GET http://${remote}:9090/out-${layout} - ORIGINAL_DST/${remote.replaceAll('.', '\\.')} `),
      "squid's log: the outbound request and its original destination",
    )
    t.match(
      log,
      new RegExp(`GET http://${played.address}:8080/in-${layout} - ORIGINAL_DST/${played.address.replaceAll('.', '\\.')} `),
      '... and the inbound one',
    )
    t.equal(log.split('\n').filter(l => l.includes('ORIGINAL_DST/')).length, 2, 'exactly those two: no loop, nothing else')
  })
}

t.test("with the defaults (the README's first path): our image's stand-in relay as the proxy, logging each connection", async t => {
  const name = unique('sr-inj-defaults')
  const pod = await injectToPod(SCRATCH, deployment('web'), { ISTIO_INJECT_IMAGE: IMAGE, ISTIO_INJECT_PULL_POLICY: 'Never' }, name)
  const played = await playAsKubelet(t, pod, { file: `${SCRATCH}/${name}.pod.yaml`, network: NETWORK, connect: fromHost, address: p => addressOf(p) })
  t.same(played.steps, ['init sidecar-redirect-init', 'sidecar sidecar-redirect-proxy', 'probe sidecar-redirect-proxy', 'start app'])
  await waitForLog(played.container('app'), '"ready":true')
  const remote = await podman('inspect', REMOTE, '--format', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`)
  t.match(await fetchIn(played.container('app'), `http://${remote}:9090/out`), { status: 200, body: { label: 'remote', via: null } }, 'app -> remote')
  t.match(await fetchIn(REMOTE, `http://${played.address}:8080/in`), { status: 200, body: { label: 'app' } }, 'remote -> app')
  const relays = (await podman('logs', played.container('sidecar-redirect-proxy'))).split('\n').filter(l => l.includes('"relayed"'))
  t.same(
    relays,
    [`{"relayed":{"from":"${played.address}","to":"${remote}:9090"}}`, `{"relayed":{"from":"${remote}","to":"${played.address}:8080"}}`],
    '`kubectl logs <pod> -c sidecar-redirect-proxy`: one line per relayed connection, with its original destination',
  )
  const proxy = readStatus(Number(await podman('inspect', played.container('sidecar-redirect-proxy'), '--format', '{{.State.Pid}}')))
  t.same([proxy.uids, proxy.capEff], [[1337, 1337, 1337, 1337], 0n], 'the relay: UID 1337, no capability')
})
