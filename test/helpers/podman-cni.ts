// podman with its CNI backend on a node of the test's own: a namespace playing the node, where every later podman
// command of the test file runs, a node agent and CNI bin dir (the rig), and a private containers.conf that is the
// checkout's (scripts/image/podman-setup.sh) with the CNI backend and the rig's dirs (CONTAINERS_CONF; that one,
// with netavark, stays as the image tests need it). nsenter --net only, so the pod netns podman mounts stays visible to the agent outside.
import { readFileSync, writeFileSync } from 'node:fs'
import type { Test } from 'tap'
import { runForStatus } from '../../src/exec/processes.js'
import { type Ranges, type Rig, startRig } from './cni.js'
import { CONTAINERS_CONF, IMAGE, podman, runPodman, runPodmanIn, unique } from './podman.js'

let nodes = 0

export interface Node {
  readonly rig: Rig
  /** The node namespace's path, for nsenter. */
  readonly netns: string
}

/**
 * startPodmanNode makes the node and points podman at it; `pods` (unique()'s) are removed first (leftovers of an
 * interrupted run). Deleted after the test, once its pods are down (tap runs teardowns last first).
 */
export const startPodmanNode = async (t: Test, pods: readonly string[]): Promise<Node> => {
  const rig = await startRig(t)
  const name = unique(`sr-node${++nodes}`)
  t.teardown(() => runForStatus('ip', ['netns', 'del', name]))
  for (const args of [
    ['netns', 'add', name],
    ['-n', name, 'link', 'set', 'lo', 'up'],
  ]) {
    const result = await runForStatus('ip', args)
    if (result.exitCode !== 0) throw new Error(`ip ${args.join(' ')} exited ${result.exitCode}: ${result.output}`)
  }
  const system = readFileSync(CONTAINERS_CONF, 'utf8')
  const backend = /^network_backend = .*$/m
  if (!backend.test(system)) throw new Error(`${CONTAINERS_CONF} has no network_backend line: run scripts/image/podman-setup.sh`)
  const conf = `${rig.dir}/containers.conf`
  writeFileSync(
    conf,
    system.replace(
      backend,
      `network_backend = "cni"\ncni_plugin_dirs = [${JSON.stringify(rig.bin)}]\nnetwork_config_dir = ${JSON.stringify(rig.dir)}`,
    ),
  )
  process.env['CONTAINERS_CONF'] = conf
  const netns = `/run/netns/${name}`
  runPodmanIn(netns)
  t.equal(await podman('info', '--format', '{{.Host.NetworkBackend}}'), 'cni', "podman uses its CNI backend, from the test's containers.conf")
  if ((await runPodman(['image', 'exists', IMAGE])).exitCode !== 0) throw new Error(`no ${IMAGE}: build it with scripts/image/build.sh`)
  for (const pod of pods) await runPodman(['pod', 'rm', '-f', unique(pod)])
  return { rig, netns }
}

/** Writes the conflist (our entry `ours`) podman sees as network sr-test-N; returns that name and its bridge's. */
export const podmanNetwork = (rig: Rig, ours: Record<string, unknown>, ranges: Ranges): { name: string; bridge: string } => {
  const list = JSON.parse(readFileSync(rig.conflist(ours, ranges), 'utf8')) as {
    name: string
    plugins: { type: string; bridge?: string }[]
  }
  return { name: list.name, bridge: list.plugins.find(plugin => plugin.type === 'bridge')?.bridge ?? '' }
}
