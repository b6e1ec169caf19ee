// A pod's network namespace for `entrypoint istio-iptables` and the CLI run in it as root or as a UID with no
// capability, with Istio's flags per backend: shared by istio-iptables.test.ts and the escape tests.
import type { Test } from 'tap'
import type { Sandbox } from '../../src/sandbox/sandbox.js'
import type { Status } from '../../src/exec/processes.js'
import { programs, REMOTE, REMOTE6, withSandbox } from './kernel.js'
import { INJECTOR_ARGS } from './istio-matrix.js'
import type { BACKENDS } from './rows.js'
import type { Path } from './traffic.js'

export type Backend = (typeof BACKENDS)[number]

/** The arguments Istio's injector gives istio-init with its default values. */
export const INIT_ARGS = INJECTOR_ARGS
export const BACKEND_ARGS: Record<Backend, string[]> = {
  'iptables-nft': ['--force-iptables-binary', 'nft'],
  'iptables-legacy': ['--force-iptables-binary', 'legacy'],
  nftables: ['--native-nftables'],
}
export const OWN: Record<Backend, string | undefined> = { 'iptables-nft': 'iptables-nft', 'iptables-legacy': 'iptables-legacy', nftables: undefined }
export const OTHER: Record<Backend, string> = { 'iptables-nft': 'iptables-legacy', 'iptables-legacy': 'iptables-nft', nftables: 'iptables-legacy' }

/** Runs the CLI in the pod, as root or (uid given) as that UID with every capability set empty. */
export const entrypoint = (box: Sandbox, args: readonly string[], as?: { uid: number; gid: number }): Promise<Status> => {
  const { cli } = programs()
  if (!as) return box.tryExec('pod', process.execPath, [cli, ...args])
  const drop = [`--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs']
  return box.tryExec('pod', 'setpriv', [...drop, process.execPath, cli, ...args])
}

export const expectCode = async (
  t: Test,
  box: Sandbox,
  args: readonly string[],
  code: number,
  as?: { uid: number; gid: number },
): Promise<string> => {
  const result = await entrypoint(box, args, as)
  t.equal(result.exitCode, code, `${args.slice(0, 2).join(' ')}${as ? ` as uid ${as.uid}` : ''} exits ${code}`, { output: result.output })
  return result.output
}

export const pod = async (t: Test): Promise<Sandbox> => {
  const box = await withSandbox(t)
  // A default route, as a pod has: the live probe's outbound check dials a documentation address through it.
  await box.exec('pod', 'ip', ['route', 'add', 'default', 'via', REMOTE])
  await box.exec('pod', 'ip', ['-6', 'route', 'add', 'default', 'via', REMOTE6])
  return box
}

export const OUT: Path = { from: 'pod', host: REMOTE, port: 9090, as: { uid: 1000 } }
