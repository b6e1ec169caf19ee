// Injected pods under podman, started the way the kubelet starts them, which podman 4.3's kube play does not: it
// refuses native sidecars (init containers with restartPolicy Always) and runs no probes or postStart hooks. So
// the pod is played with every container created and none started, each native sidecar moved among the
// containers and every probe taken out; then, in the kubelet's order, each init container runs to completion, a
// native sidecar is started and its startup probe run until it passes before the next init container, and each
// container is started with its postStart hook and startup probe run before the next. A probe or hook that fails
// fails the test.
import { writeFileSync } from 'node:fs'
import type { Test } from 'tap'
import { podman, runPodman } from './podman.js'

export type Obj = Record<string, any>

/** Connects to host:port from where the kubelet would (the node); true once something accepts. */
export type Connect = (host: string, port: number) => Promise<boolean>

const PROBES = ['startupProbe', 'readinessProbe', 'livenessProbe'] as const

const forPodman = (pod: Obj): Obj => {
  const strip = (c: Obj): Obj =>
    Object.fromEntries(Object.entries(c).filter(([key]) => !(PROBES as readonly string[]).includes(key) && key !== 'restartPolicy'))
  const inits: Obj[] = pod['spec'].initContainers ?? []
  // podman 4.3 holds annotation values to the 63 characters of a label value ("value length exceeds Kubernetes
  // max 63"); the API server takes 256 KiB. Only injection's status is that long, and nothing reads it at run time.
  const annotations = Object.fromEntries(Object.entries(pod['metadata'].annotations ?? {}).filter(([, v]) => String(v).length <= 63))
  return {
    ...pod,
    metadata: { ...pod['metadata'], annotations },
    spec: {
      ...pod['spec'],
      // podman applies the pod's restart policy to init containers too: Always would run them forever.
      restartPolicy: 'OnFailure',
      initContainers: inits.filter(c => c['restartPolicy'] !== 'Always').map(strip),
      containers: [...inits.filter(c => c['restartPolicy'] === 'Always'), ...pod['spec'].containers].map(strip),
    },
  }
}

const until = async (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<number> => {
  const started = Date.now()
  for (let attempt = 1; ; attempt++) {
    if (await check()) return attempt
    if (Date.now() - started > timeoutMs) throw new Error(`${what} did not pass within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

export interface Played {
  readonly name: string
  /** The container's name in podman. */
  readonly container: (name: string) => string
  readonly address: string
  /** What ran, in order: `init NAME`, `sidecar NAME`, `probe NAME`, `hook NAME`, `start NAME`. */
  readonly steps: readonly string[]
}

/**
 * playAsKubelet runs `pod` (a Pod object) on `network`, in the kubelet's order; `connect` runs TCP probes from the
 * node, `address` reads the pod's address once its sandbox exists.
 */
export const playAsKubelet = async (
  t: Test,
  pod: Obj,
  options: { file: string; network: string; connect: Connect; address: (pod: string) => Promise<string> },
): Promise<Played> => {
  const name: string = pod['metadata'].name
  writeFileSync(options.file, JSON.stringify(forPodman(pod)))
  await runPodman(['pod', 'rm', '-f', name])
  await podman('kube', 'play', '--start=false', '--network', options.network, options.file)
  t.teardown(() => runPodman(['kube', 'down', options.file]))
  const container = (c: string): string => `${name}-${c}`
  const steps: string[] = []
  let address = ''
  const probe = async (c: Obj): Promise<void> => {
    const startup = c['startupProbe']
    if (!startup) return
    const timeoutMs = (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3) * 1000
    if (startup.tcpSocket) {
      address ||= await options.address(name)
      await until(`${c['name']}'s TCP startup probe on ${address}:${startup.tcpSocket.port}`, timeoutMs, () =>
        options.connect(address, startup.tcpSocket.port),
      )
    } else if (startup.exec) {
      await until(
        `${c['name']}'s exec startup probe`,
        timeoutMs,
        async () => (await runPodman(['exec', container(c['name']), ...startup.exec.command])).exitCode === 0,
      )
    } else throw new Error(`${c['name']}: a startup probe this player does not run: ${JSON.stringify(startup)}`)
    steps.push(`probe ${c['name']}`)
  }
  for (const init of pod['spec'].initContainers ?? []) {
    if (init.restartPolicy === 'Always') {
      await podman('start', container(init.name))
      steps.push(`sidecar ${init.name}`)
      await probe(init)
    } else {
      await podman('start', '--attach', container(init.name))
      const code = await podman('inspect', container(init.name), '--format', '{{.State.ExitCode}}')
      if (code !== '0') throw new Error(`init container ${init.name} exited ${code}`)
      steps.push(`init ${init.name}`)
    }
  }
  for (const c of pod['spec'].containers) {
    await podman('start', container(c.name))
    steps.push(`start ${c.name}`)
    const hook = c.lifecycle?.postStart?.exec?.command
    if (hook) {
      await podman('exec', container(c.name), ...hook)
      steps.push(`hook ${c.name}`)
    }
    await probe(c)
  }
  address ||= await options.address(name)
  return { name, container, address, steps }
}
