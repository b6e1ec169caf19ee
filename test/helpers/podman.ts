// Real pods with podman, for the image, chart and CNI tests: a test network of this process's own, kube play with
// teardown, and traffic checks that read the stand-in proxy's relay log. Every name podman sees (network, pods,
// containers) carries this run's id and this process's pid, and the network a subnet no other network has, so two
// runs side by side (two clones, two CI jobs) and two test files of one run never meet.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import { parse, stringify } from 'yaml'
import { runForStatus, type Status } from '../../src/exec/processes.js'
import { readStatus } from '../../src/privilege/status.js'

export const ROOT = new URL('../..', import.meta.url).pathname

/**
 * This run's id (scripts/test/tier.sh exports SR_RUN_ID; scripts/test/pods.sh finds a dead run's leftovers by it)
 * and this process's pid: `unique(name)` is the name a test gives podman.
 */
export const RUN = `${process.env['SR_RUN_ID'] ?? 'dev'}-${process.pid}`
export const unique = (name: string): string => (name.endsWith(`-${RUN}`) ? name : `${name}-${RUN}`)

/** The image the examples and the chart name, as a user builds it (scripts/image/build.sh's default tag). */
export const DEV_IMAGE = 'localhost/sidecar-redirect:dev'
/** The image under test: this run's own tag (scripts/test/pods.sh builds it and removes it at the end). */
export const IMAGE = process.env['SR_IMAGE'] ?? DEV_IMAGE
/** IMAGE as the chart's values take it. */
export const IMAGE_VALUES = {
  repository: IMAGE.slice(0, IMAGE.lastIndexOf(':')),
  tag: IMAGE.slice(IMAGE.lastIndexOf(':') + 1),
  pullPolicy: 'Never',
} as const

export const NETWORK = unique('sr-test')

const written: string[] = []
process.once('exit', () => {
  for (const dir of written) rmSync(dir, { recursive: true, force: true })
})

/**
 * podFile writes a pod spec a test made into a temp dir of its own, removed when the test process exits (after
 * every teardown that still takes the pod down by its file).
 */
export const podFile = (prefix: string, text: string): string => {
  // Named with RUN: a process tap killed on a timeout never gets to its exit handler, and scripts/test/pods-clean.sh
  // then removes its run's dirs by that name.
  const dir = mkdtempSync(`${tmpdir()}/${prefix}-${RUN}-`)
  written.push(dir)
  writeFileSync(`${dir}/pod.yaml`, text)
  return `${dir}/pod.yaml`
}

/**
 * The containers.conf scripts/image/podman-setup.sh writes for this checkout; every podman this process starts
 * reads it and no other (the machine's /etc/containers/containers.conf is never read or written).
 */
export const CONTAINERS_CONF = `${ROOT}.tools/containers.conf`
process.env['CONTAINERS_CONF'] ??= CONTAINERS_CONF

// Where podman runs: in this process's network namespace, or (the CNI test) in one playing the node, so that the
// bridge its CNI backend makes lives there. nsenter changes nothing else: the netns podman mounts for a pod stay
// visible to the node agent outside.
let netns: string | undefined

/** Runs every later podman command of this process in the network namespace at `path`. */
export const runPodmanIn = (path: string): void => {
  netns = path
}

/** Runs podman (where runPodmanIn says) and returns its exit code and output, failing nothing. */
export const runPodman = (args: readonly string[]): Promise<Status> =>
  netns === undefined ? runForStatus('podman', args) : runForStatus('nsenter', [`--net=${netns}`, 'podman', ...args])

export const podman = async (...args: string[]): Promise<string> => {
  const result = await runPodman(args)
  if (result.exitCode !== 0) throw new Error(`podman ${args.join(' ')} exited ${result.exitCode}: ${result.output}`)
  return result.output.trim()
}

// The subnets a test network may take: 198.18.100.0/24 to 198.18.255.0/24, test addresses the kernel tests do not
// use on the host (theirs live in namespaces of their own).
const SUBNETS = 156
let subnet: string | undefined

/** The test network's IPv4 subnet (a.b.c.0/24), once prepareNetwork made it. */
export const networkSubnet = (): string => {
  if (subnet === undefined) throw new Error('no test network: call prepareNetwork first')
  return subnet
}

/**
 * Creates podman network `name` on a /24 no other podman network has, and returns it: podman refuses, under its own
 * lock, a subnet another network uses, so two runs choosing at once each end with a different one; a run starts
 * looking at a place its name picks, so most take their first try.
 */
export const createNetwork = async (name: string): Promise<string> => {
  const start = [...name].reduce((hash, c) => (hash * 31 + c.charCodeAt(0)) % SUBNETS, 0)
  let last: Status | undefined
  for (let i = 0; i < SUBNETS; i++) {
    const candidate = `198.18.${100 + ((start + i) % SUBNETS)}.0/24`
    last = await runPodman(['network', 'create', '--subnet', candidate, name])
    if (last.exitCode === 0) return candidate
    // Only a subnet taken is worth another try ("network name ... already used" is not).
    if (!/subnet \S+ is already used/.test(last.output)) break
  }
  throw new Error(`podman network create ${name} exited ${last?.exitCode}: ${last?.output}`)
}

/**
 * Creates this process's test network (createNetwork), once `pods` (unique()'s) are removed. The network (and with
 * it the host rules netavark adds for it) is removed when the test file ends.
 */
export const prepareNetwork = async (t: Test, pods: readonly string[] = []): Promise<void> => {
  t.teardown(() => runPodman(['network', 'rm', '-f', NETWORK]))
  for (const pod of pods) await runPodman(['pod', 'rm', '-f', unique(pod)])
  if ((await runPodman(['network', 'exists', NETWORK])).exitCode === 0) await podman('network', 'rm', '-f', NETWORK)
  subnet = await createNetwork(NETWORK)
}

/**
 * A pod spec made this run's own: its name unique() and every image that is the examples' DEV_IMAGE this run's
 * IMAGE, written to a temp file (podFile). Returns the file and the pod's name.
 */
export const runSpec = (file: string): { file: string; name: string } => {
  const spec = parse(readFileSync(file, 'utf8')) as { metadata: { name: string }; spec: Record<string, unknown> }
  spec.metadata.name = unique(spec.metadata.name)
  const images = (value: unknown): unknown =>
    value === DEV_IMAGE
      ? IMAGE
      : Array.isArray(value)
        ? value.map(images)
        : value !== null && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, images(v)]))
          : value
  spec.spec = images(spec.spec) as Record<string, unknown>
  return { file: podFile('sr-pod', stringify(spec)), name: spec.metadata.name }
}

type Spec = {
  name: string
  lifecycle?: { postStart?: { exec?: { command: string[] } } }
  startupProbe?: { exec?: { command: string[] }; failureThreshold?: number }
}

/**
 * Plays a pod the way the kubelet starts a classic one, which podman 4.3 does not (it runs no postStart hooks
 * and no probes, and starts containers in no set order): each init container to completion, in order; then each
 * container in order, running its postStart exec hook and its startupProbe exec command in it (tried again up to
 * failureThreshold times), where the kubelet would, before the next container starts. A failing step fails the
 * test. The pod played is runSpec's copy of `source`: its name, returned, is unique(metadata.name).
 */
export const playInOrder = async (t: Test, source: string, network = NETWORK): Promise<string> => {
  const { file, name } = runSpec(source)
  const { spec } = parse(readFileSync(file, 'utf8')) as { spec: { initContainers?: Spec[]; containers: Spec[] } }
  // Before the play: a play that fails half-way may leave the pod it made (kube down of no pod does nothing).
  t.teardown(() => runPodman(['kube', 'down', file]))
  await podman('kube', 'play', '--start=false', '--network', network, file)
  for (const init of spec.initContainers ?? []) await podman('start', '--attach', `${name}-${init.name}`)
  for (const container of spec.containers) {
    const id = `${name}-${container.name}`
    await podman('start', id)
    const hook = container.lifecycle?.postStart?.exec
    if (hook) await podman('exec', id, ...hook.command)
    const probe = container.startupProbe
    if (probe?.exec) {
      // As the kubelet does, a failed probe is tried again, up to failureThreshold times (3 by default): under
      // load podman 4.3's exec now and then ends 137 though its command succeeded (podman issue 10825).
      for (let failures = 1; ; failures++) {
        const result = await runPodman(['exec', id, ...probe.exec.command])
        if (result.exitCode === 0) break
        if (failures >= (probe.failureThreshold ?? 3))
          throw new Error(`${id}: startup probe failed ${failures} times: exit ${result.exitCode}: ${result.output}`)
        await new Promise(resolve => setTimeout(resolve, 1000))
      }
    }
  }
  return name
}

/** Waits, bounded, for a line containing `text` in a container's log: a server saying it listens. */
export const waitForLog = async (container: string, text: string, timeoutMs = 10_000): Promise<void> => {
  for (const started = Date.now(); !(await podman('logs', container)).includes(text); ) {
    if (Date.now() - started > timeoutMs) throw new Error(`${container} did not log ${text} within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** The remote host pod the image and chart tests play beside theirs, and its name once played. */
export const REMOTE_SPEC = `${ROOT}test/pods/image/remote.yaml`
export const REMOTE = unique('sidecar-remote')

const infraOf = (pod: string): Promise<string> => podman('pod', 'inspect', pod, '--format', '{{.InfraContainerID}}')

export const addressOf = async (pod: string, network = NETWORK, field = 'IPAddress'): Promise<string> =>
  podman('inspect', await infraOf(pod), '--format', `{{(index .NetworkSettings.Networks "${network}").${field}}}`)

/** The nat table in a pod's network namespace; throws if it cannot be read, so "no rule of ours" is never vacuous. */
export const natRulesOf = async (pod: string): Promise<string> => {
  const pid = await podman('inspect', await infraOf(pod), '--format', '{{.State.Pid}}')
  // A stopped infra container reads as pid 0.
  if (!/^[1-9]\d*$/.test(pid)) throw new Error(`${pod}: its infra container runs no process (pid ${JSON.stringify(pid)})`)
  const read = await runForStatus('nsenter', ['-n', '-t', pid, 'iptables-save', '-t', 'nat'])
  if (read.exitCode !== 0) throw new Error(`iptables-save in ${pod} (pid ${pid}) exited ${read.exitCode}: ${read.output}`)
  return read.output
}

export const connect = async (container: string, host: string, port: number): Promise<{ label?: string }> => {
  const out = await podman('exec', container, '/usr/local/bin/node', '/app/dist/peer.mjs', 'connect', host, String(port))
  return (JSON.parse(out) as { reply?: { label?: string } }).reply ?? {}
}

/**
 * Proves, for a played pod `pod` (containers app and proxy) beside the remote pod (REMOTE_SPEC, played): the init rules are there;
 * outbound and inbound reach their destinations through the proxy, once each, no loop; and the agent and the
 * proxy run as 1337 with no_new_privs and exactly `caps`.
 */
export const expectCapturedPod = async (t: Test, pod: string, caps: bigint): Promise<void> => {
  const [address, remote] = [await addressOf(pod), await addressOf(REMOTE)]
  t.equal(address.replace(/\.\d+$/, '.0/24'), networkSubnet(), 'the pod is on the test network')
  t.match(
    await natRulesOf(pod),
    /-A OUTPUT -p tcp -m comment --comment "sidecar-redirect\/outbound" -j SIDECAR_OUTBOUND/,
    'the init container exited 0 and left its rules in the pod',
  )
  t.equal((await connect(`${pod}-app`, remote, 9090)).label, 'remote', 'app -> remote answered by the remote')
  await waitForLog(`${pod}-app`, '"ready":true')
  t.equal((await connect(`${REMOTE}-server`, address, 8080)).label, 'app', 'remote -> pod answered by the app')
  const logs = await podman('logs', `${pod}-proxy`)
  t.match(
    logs,
    `"relayed":{"from":"${address}","to":"${remote}:9090"}`,
    'the outbound connection went through the proxy, with its original destination',
  )
  t.match(
    logs,
    `"relayed":{"from":"${remote}","to":"${address}:8080"}`,
    'the inbound connection went through the proxy, with its original destination',
  )
  t.equal(logs.split('\n').filter(l => l.includes('"relayed"')).length, 2, 'no loop: exactly the two relays')
  const agent = Number(await podman('inspect', `${pod}-proxy`, '--format', '{{.State.Pid}}'))
  const proxy = Number(readFileSync(`/proc/${agent}/task/${agent}/children`, 'utf8').trim().split(/\s+/)[0])
  for (const [what, pid] of [
    ['agent', agent],
    ['proxy', proxy],
  ] as const) {
    const status = readStatus(pid)
    t.same([status.uids, status.noNewPrivs], [[1337, 1337, 1337, 1337], true], `${what}: UID 1337 and no_new_privs, read from the host`)
    t.same(
      [status.capEff, status.capPrm, status.capAmb, status.capBnd],
      [caps, caps, caps, caps],
      `${what}: capabilities exactly 0x${caps.toString(16)}`,
    )
  }
}
