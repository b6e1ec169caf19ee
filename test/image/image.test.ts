// The image in a real pod: podman kube play runs the README's pod spec (the same file) on a test network
// (198.18.100.0/24), next to a remote server pod. Traffic decides: the app's outbound and the remote's inbound
// reach their destinations through the proxy, which runs as 1337 with exactly its capabilities. Needs the image
// built by scripts/image/build.sh (npm run test:image does both).
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import { runForStatus } from '../../src/backend/exec.js'
import { CAP_NET_ADMIN, readStatus } from '../../src/privilege/status.js'

const ROOT = new URL('../..', import.meta.url).pathname
const NETWORK = 'sr-test'
const podman = async (...args: string[]): Promise<string> => {
  const result = await runForStatus('podman', args)
  if (result.exitCode !== 0) throw new Error(`podman ${args.join(' ')} exited ${result.exitCode}: ${result.output}`)
  return result.output.trim()
}
const addressOf = async (pod: string): Promise<string> =>
  podman('inspect', await podman('pod', 'inspect', pod, '--format', '{{.InfraContainerID}}'), '--format', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`)
const connect = async (container: string, host: string, port: number): Promise<{ label?: string }> => {
  const out = await podman('exec', container, '/usr/local/bin/node', '/app/dist/peer.mjs', 'connect', host, String(port))
  return (JSON.parse(out) as { reply?: { label?: string } }).reply ?? {}
}

const play = async (t: Test, file: string): Promise<void> => {
  await podman('kube', 'play', '--network', NETWORK, file)
  t.teardown(() => runForStatus('podman', ['kube', 'down', file]))
}

t.before(async () => {
  if ((await runForStatus('podman', ['network', 'exists', NETWORK])).exitCode !== 0) {
    await podman('network', 'create', '--subnet', '198.18.100.0/24', NETWORK)
  }
  for (const pod of ['sidecar-demo', 'sidecar-remote']) await runForStatus('podman', ['pod', 'rm', '-f', pod])
})
t.teardown(() => runForStatus('podman', ['network', 'rm', '-f', NETWORK]))

t.test('the README shows the pod specs the test plays, verbatim', async t => {
  const readme = readFileSync(`${ROOT}README.md`, 'utf8')
  for (const file of ['examples/pod.yaml', 'examples/pod-mark.yaml']) t.ok(readme.includes(readFileSync(`${ROOT}${file}`, 'utf8')), file)
})

const METHODS: [string, string, bigint][] = [
  ['uid', 'examples/pod.yaml', 0n],
  ['mark', 'examples/pod-mark.yaml', 1n << BigInt(CAP_NET_ADMIN)],
]

for (const [method, file, caps] of METHODS) {
  t.test(`${method}: in a real pod, app traffic goes through the unprivileged proxy both ways`, async t => {
    await play(t, `${ROOT}test/image/remote.yaml`)
    await play(t, `${ROOT}${file}`)
    const [pod, remote] = [await addressOf('sidecar-demo'), await addressOf('sidecar-remote')]
    t.match(pod, /^198\.18\.100\./, 'the pod is on the test network')
    const infraPid = Number(await podman('inspect', await podman('pod', 'inspect', 'sidecar-demo', '--format', '{{.InfraContainerID}}'), '--format', '{{.State.Pid}}'))
    const rules = await runForStatus('nsenter', ['-n', '-t', String(infraPid), 'iptables-save', '-t', 'nat'])
    t.match(rules.output, /-A OUTPUT -p tcp -m comment --comment "sidecar-redirect\/outbound" -j SIDECAR_OUTBOUND/, 'the init container exited 0 and left its rules in the pod')
    t.equal((await connect('sidecar-demo-app', remote, 9090)).label, 'remote', 'app -> remote answered by the remote')
    t.equal((await connect('sidecar-remote-server', pod, 8080)).label, 'app', 'remote -> pod answered by the app')
    const logs = await podman('logs', 'sidecar-demo-proxy')
    t.match(logs, `"relayed":{"from":"${pod}","to":"${remote}:9090"}`, 'the outbound connection went through the proxy, with its original destination')
    t.match(logs, `"relayed":{"from":"${remote}","to":"${pod}:8080"}`, 'the inbound connection went through the proxy, with its original destination')
    t.equal(logs.split('\n').filter(l => l.includes('"relayed"')).length, 2, 'no loop: exactly the two relays')
    const agent = Number(await podman('inspect', 'sidecar-demo-proxy', '--format', '{{.State.Pid}}'))
    const proxy = Number(readFileSync(`/proc/${agent}/task/${agent}/children`, 'utf8').trim().split(/\s+/)[0])
    for (const [what, pid] of [['agent', agent], ['proxy', proxy]] as const) {
      const status = readStatus(pid)
      t.same([status.uids, status.noNewPrivs], [[1337, 1337, 1337, 1337], true], `${what}: UID 1337 and no_new_privs, read from the host`)
      t.same([status.capEff, status.capPrm, status.capAmb, status.capBnd], [caps, caps, caps, caps], `${what}: capabilities exactly 0x${caps.toString(16)}`)
    }
  })
}

t.test('a broken setting fails the init container with exit 2, and the pod never starts', async t => {
  const dir = mkdtempSync(`${tmpdir()}/sr-image-`)
  const broken = `${dir}/pod.yaml`
  const spec = readFileSync(`${ROOT}examples/pod.yaml`, 'utf8')
  // Never: otherwise the failing init container would be restarted, as the policy says.
  writeFileSync(broken, spec.replace('value: "5001" }', 'value: "70000" }').replace('restartPolicy: OnFailure', 'restartPolicy: Never'))
  t.teardown(() => runForStatus('podman', ['kube', 'down', broken]))
  const played = await runForStatus('podman', ['kube', 'play', '--network', NETWORK, broken])
  t.not(played.exitCode, 0, 'kube play fails')
  t.match(played.output, /init container .* exited with code 2/)
  t.match(await podman('logs', 'sidecar-demo-sidecar-redirect'), 'ISTIO_PROXY_PORT="70000" is not valid: expected a TCP port from 1 to 65535')
  const states = await podman('ps', '-a', '--filter', 'pod=sidecar-demo', '--format', '{{.Names}} {{.State}}')
  t.match(states, /sidecar-demo-app (created|configured)/i, 'the app container never ran')
  t.match(states, /sidecar-demo-proxy (created|configured)/i, 'the proxy container never ran')
})
