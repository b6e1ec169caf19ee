// The image as Istio's init image, in real pods: Istio's exact istio-init and istio-validation containers (the
// examples/istio-pod.yaml, shown verbatim in docs/istio.md, and examples/istio-cni-pod.yaml) under podman kube play, beside a
// remote pod, with a stand-in transparent proxy on 15001/15006 in the proxy's place. Needs the image built by
// scripts/image/build.sh (npm run test:image does both).
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { parse, stringify } from 'yaml'
import { runForStatus } from '../../../src/exec/processes.js'
import {
  addressOf,
  connect,
  natRulesOf,
  NETWORK,
  playInOrder,
  podFile,
  podman,
  prepareNetwork,
  IMAGE,
  REMOTE,
  REMOTE_SPEC,
  ROOT,
  runPodman,
  runSpec,
  unique,
  waitForLog,
} from '../../helpers/podman.js'

const POD = unique('istio-demo')

type PodSpec = {
  metadata: { name: string }
  spec: { restartPolicy?: string; initContainers: { name: string; args: string[] }[]; containers: unknown[] }
}
const read = (file: string): PodSpec => parse(readFileSync(`${ROOT}${file}`, 'utf8')) as PodSpec
const INIT = read('examples/istio-pod.yaml')
const CNI = read('examples/istio-cni-pod.yaml')
const ARGS = INIT.spec.initContainers[0]!.args

const write = (spec: PodSpec): string => runSpec(podFile('sr-istio', stringify(spec))).file

t.before(async () => {
  await prepareNetwork(t, ['istio-demo', 'sidecar-remote'])
  await playInOrder(t, REMOTE_SPEC)
})

t.test('docs/istio.md shows the pod spec the test plays, verbatim', async t => {
  t.ok(readFileSync(`${ROOT}docs/istio.md`, 'utf8').includes(readFileSync(`${ROOT}examples/istio-pod.yaml`, 'utf8')))
})

/** The app's traffic goes through the stand-in proxy both ways, once each: outbound on 15001, inbound on 15006. */
const expectCaptured = async (t: Test): Promise<void> => {
  const [address, remote] = [await addressOf(POD), await addressOf(REMOTE)]
  t.equal((await connect(`${POD}-app`, remote, 9090)).label, 'remote', 'app -> remote answered by the remote')
  await waitForLog(`${POD}-app`, '"ready":true')
  t.equal((await connect(`${REMOTE}-server`, address, 8080)).label, 'app', 'remote -> pod answered by the app')
  const logs = await podman('logs', `${POD}-istio-proxy`)
  t.match(logs, `"relayed":{"from":"${address}","to":"${remote}:9090"}`, 'outbound went through the proxy, with its original destination')
  t.match(logs, `"relayed":{"from":"${remote}","to":"${address}:8080"}`, 'inbound went through the proxy, with its original destination')
  t.equal(
    logs.split('\n').filter(l => l.includes('"relayed"')).length,
    2,
    "exactly the two relays: the proxy's own relay to the app (from 127.0.0.6) was not captured again",
  )
}

/** Runs the image in the pod's network namespace, as an operator's `podman run --network container:...` would. */
const inPod = (args: readonly string[], caps = ['--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW']) =>
  runForStatus('podman', ['run', '--rm', '--pod', POD, '--cap-drop', 'ALL', ...caps, '--read-only', IMAGE, ...args])

t.test("istio-init, Istio's exact container: capture both ways, verify 0, an escape verify names", async t => {
  await playInOrder(t, `${ROOT}examples/istio-pod.yaml`)
  t.match(
    await natRulesOf(POD),
    /-A OUTPUT -m comment --comment "sidecar-redirect\/istio-output" -j ISTIO_OUTPUT/,
    "istio-init exited 0 and left Istio's rules",
  )
  await expectCaptured(t)
  const verified = await inPod(['verify', 'istio-iptables', ...ARGS])
  t.equal(verified.exitCode, 0, 'verify istio-iptables, with the same arguments, finds them exactly', { output: verified.output })
  // A DNAT in the other iptables variant binds first: the whole-path check names it.
  const pid = await podman('inspect', await podman('pod', 'inspect', POD, '--format', '{{.InfraContainerID}}'), '--format', '{{.State.Pid}}')
  const dnat = ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9090', '-j', 'DNAT', '--to-destination', `${await addressOf(REMOTE)}:9091`]
  const added = await runForStatus('nsenter', ['-n', '-t', pid, 'iptables-legacy', ...dnat])
  t.equal(added.exitCode, 0, { output: added.output })
  const escaped = await inPod(['verify', 'istio-iptables', ...ARGS])
  t.equal(escaped.exitCode, 5, 'verify exits 5', { output: escaped.output })
  t.match(escaped.output, /iptables-legacy ipv4 nat OUTPUT rule 1: .*-j DNAT/)
})

t.test('istio-validation without capture exits 126, and the pod never starts', async t => {
  const file = write({ ...CNI, spec: { ...CNI.spec, restartPolicy: 'Never' } })
  t.teardown(() => runPodman(['kube', 'down', file]))
  await podman('kube', 'play', '--start=false', '--network', NETWORK, file)
  const validation = await runPodman(['start', '--attach', `${POD}-istio-validation`])
  t.equal(await podman('inspect', `${POD}-istio-validation`, '--format', '{{.State.ExitCode}}'), '126', 'exit 126', { output: validation.output })
  t.match(validation.output, /validation failed/)
  t.match(validation.output, /proxy-to-self: failed, proxy uid 1337 gid 1337/)
  const states = await podman('ps', '-a', '--filter', `pod=${POD}`, '--format', '{{.Names}} {{.State}}')
  t.notMatch(states, new RegExp(`${POD}-app (running|exited)`, 'i'), 'the app never ran')
})

t.test('istio-init, then istio-validation as Istio CNI runs it: validation 0, traffic captured', async t => {
  const file = write({ ...INIT, spec: { ...INIT.spec, initContainers: [...INIT.spec.initContainers, ...CNI.spec.initContainers] } })
  await podman('kube', 'play', '--start=false', '--network', NETWORK, file)
  t.teardown(() => runPodman(['kube', 'down', file]))
  for (const init of ['istio-init', 'istio-validation']) {
    const run = await runPodman(['start', '--attach', `${POD}-${init}`])
    t.equal(await podman('inspect', `${POD}-${init}`, '--format', '{{.State.ExitCode}}'), '0', `${init} exits 0`, { output: run.output })
    if (init === 'istio-validation') t.match(run.output, /validation passed, capture is in place/)
  }
  for (const container of ['istio-proxy', 'app']) await podman('start', `${POD}-${container}`)
  await podman('exec', `${POD}-istio-proxy`, '/app/entrypoint', 'ready', '--proxy-port', '15001')
  await expectCaptured(t)
})
