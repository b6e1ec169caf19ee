// Kernel tests run as root inside namespaces they create; tap's teardown always deletes them. Outside CI a
// non-root run skips with the reason; under CI=true it fails, because a skipped kernel suite proves nothing.

import { accessSync, chmodSync, constants, cpSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname } from 'node:path'
import type { Test } from 'tap'
import { realExec } from '../../src/exec/exec.js'
import { createSandbox, type Programs, type Sandbox, type SandboxAddresses, type SandboxOptions } from '../../src/sandbox/sandbox.js'
import { OWNED_CHAINS } from '../../src/plan/owned.js'
import { refusingIpv6Path, refusingNftPath } from './paths.js'

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '')

// Programs run under a dropped UID must be readable by it, as they are in the image. A checkout inside a private
// directory (mktemp makes them 0700) is not, so the runtime files are then staged in a world-readable copy.
const readableByOthers = (path: string): boolean => {
  for (let dir = path; dir !== '/'; dir = dirname(dir)) if ((statSync(dir).mode & 0o005) !== 0o005) return false
  return true
}

let staged: string | undefined

/** Where programs run under a dropped UID are read from: the checkout, or a world-readable copy of what they need. */
export const runtimeRoot = (): string => {
  if (readableByOthers(ROOT)) return ROOT
  if (!staged) {
    const dir = mkdtempSync(`${tmpdir()}/sr-runtime-`)
    for (const part of ['dist', 'entrypoint', 'package.json', 'node_modules/koffi', 'node_modules/@koromix', 'node_modules/posix', 'test/fixtures']) {
      cpSync(`${ROOT}/${part}`, `${dir}/${part}`, { recursive: true })
    }
    chmodSync(dir, 0o755)
    accessSync(`${dir}/dist/cli.mjs`, constants.R_OK)
    staged = dir
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  }
  return staged
}

export const programs = (): Programs => {
  const root = runtimeRoot()
  return { cli: `${root}/dist/cli.mjs`, peer: `${root}/dist/peer.mjs` }
}

/** A pod with hostUsers: false as Kubernetes maps it: the pod's 0-65535 are the node's 327680-393215. */
export const POD_USERNS_MAP = '0 327680 65536'

// How long a process started in a test may take to say it is up: on a loaded 2-core machine (load 30 seen), tens
// of seconds. It bounds a hang, not speed.
export const START_MS = 60_000

export const POD = '198.18.0.1'
export const REMOTE = '198.18.0.2'
export const POD6 = '2001:db8::1'
export const REMOTE6 = '2001:db8::2'
export const ADDRESSES: SandboxAddresses = { pod: POD, remote: REMOTE, pod6: POD6, remote6: REMOTE6 }

/** Returns false (after skipping or failing the test) when kernel tests cannot run here. */
export const kernelAvailable = (t: Test): boolean => {
  if (process.getuid?.() === 0) return true
  if (process.env['CI'] === 'true') t.fail('kernel tests need root, and CI must run them')
  else t.plan(0, 'kernel tests need root: run them as root, as CI does')
  return false
}

export const withSandbox = async (t: Test, addresses: SandboxAddresses = ADDRESSES, options: SandboxOptions = {}): Promise<Sandbox> => {
  const box = await createSandbox({ exec: realExec }, addresses, programs(), options)
  t.teardown(() => box.destroy())
  return box
}

const dropVolatile = (text: string): string =>
  text
    .split('\n')
    .filter(line => !line.startsWith('#'))
    // The kernel adds a link-local address's local route once duplicate address detection ends, a second or so
    // after the veth comes up: not state anyone here wrote.
    .filter(line => !/^local fe80::\S+ dev /.test(line))
    .map(line => line.replace(/\[\d+:\d+\]/, '[0:0]').replace(/counter packets \d+ bytes \d+/g, 'counter packets 0 bytes 0'))
    .join('\n')

const NETFILTER = [
  ['nft', ['list', 'ruleset']],
  ['iptables-legacy-save', []],
  ['ip6tables-legacy-save', []],
  ['ipset', ['save']],
] as const
const ROUTING = [
  ['ip', ['-4', 'rule', 'show']],
  ['ip', ['-6', 'rule', 'show']],
  ['ip', ['-4', 'route', 'show', 'table', 'all']],
  ['ip', ['-6', 'route', 'show', 'table', 'all']],
] as const

/**
 * Everything netfilter holds in the pod namespace, both variants and families, and its policy rules and routes of
 * every table, minus dates and counters.
 * Legacy tables are read without -t, which lists only tables that already exist and so creates none.
 * `netfilter` leaves routing out: where other programs own it (a CNI list's loopback and bridge plugins change
 * the pod's routes on ADD and DEL) and nothing of ours routes.
 */
export const snapshot = async (box: Sandbox, only?: 'netfilter'): Promise<string> => {
  const parts: string[] = []
  for (const [file, args] of only === 'netfilter' ? NETFILTER : [...NETFILTER, ...ROUTING]) {
    parts.push(`== ${[file, ...args].join(' ')}\n${dropVolatile((await box.exec('pod', file, args)).stdout)}`)
  }
  return parts.join('\n')
}

/**
 * What of a snapshot is not ours: every line that names our chains or carries our comments is dropped, and so is
 * our nft table. Comparing this before and after a run proves that foreign state was not touched.
 */
// Our chains' names, every mode's (src/plan/owned.ts), longest first so a name is never cut short by another.
const CHAINS = [...OWNED_CHAINS].sort((a, b) => b.length - a.length).join('|')

export const foreignOf = (snapshot: string): string =>
  snapshot
    .replace(/^table inet sidecar_redirect \{\n[\s\S]*?^\}\n/m, '')
    .replace(new RegExp(`^\\tchain (?:${CHAINS}) \\{\\n[\\s\\S]*?^\\t\\}\\n\\n?`, 'gm'), '')
    // The built-in chains init made for iptables-nft (marked; a chain's lines are indented twice), and then the
    // tables it made, once nothing else is in them.
    .replace(/^\tchain \S+ \{\n\t\tcomment "sidecar-redirect\/created"\n(?:\t\t[^\n]*\n)*\t\}\n\n?/gm, '')
    .replace(/^table \S+ \S+ \{\n\tcomment "sidecar-redirect\/created"\n\n?\}\n/gm, '')
    .split('\n')
    .filter(line => !new RegExp(`sidecar-redirect/|\\b(?:${CHAINS})\\b|^(create|add) SIDECAR_SVC[46](_PORTS)? `).test(line))
    // TPROXY's policy rule and local route with the default mark and table (see src/backend/routing.ts).
    .filter(line => line !== '32000:\tfrom all fwmark 0x539 lookup 133' && !/^local default dev lo table 133 /.test(line))
    .join('\n')

/** Runs init in the pod namespace and fails the test with its output if it did not exit as expected. */
export const initOk = async (t: Test, box: Sandbox, env: Record<string, string>, args: string[] = ['init']): Promise<string> => {
  const result = await box.runInit({ ISTIO_VERIFY: 'rules', ...env }, args)
  t.equal(result.exitCode, 0, `${args.join(' ')} ${JSON.stringify(env)} exits 0`, { output: result.output })
  return result.output
}

/**
 * A refused apply of `changed` settings (the other family's restore, or the one nft transaction, refused through
 * PATH) exits 4 and leaves the namespace as it was; then clean leaves exactly `before`.
 */
export const refusedThenClean = async (
  t: Test,
  box: Sandbox,
  backend: string,
  env: Record<string, string>,
  changed: Record<string, string>,
  before: string,
): Promise<void> => {
  const earlier = await snapshot(box)
  const PATH = backend === 'nftables' ? refusingNftPath() : refusingIpv6Path()
  const refused = await box.runInit({ ...env, ...changed, PATH })
  t.equal(refused.exitCode, 4, 'a refused apply exits 4', { output: refused.output })
  t.equal(await snapshot(box), earlier, 'what was applied before is back, in every table and both families')
  await initOk(t, box, env, ['clean'])
  t.equal(await snapshot(box), before, 'clean leaves exactly what was there before')
}

/** A second veth pair: `side0` in the pod, `side0r` in the remote, on a subnet of its own per family. */
export const SIDE = { pod: '198.18.1.1', remote: '198.18.1.2', pod6: '2001:db8:1::1', remote6: '2001:db8:1::2' }

export const addSidePair = async (box: Sandbox): Promise<void> => {
  await box.exec('pod', 'ip', ['link', 'add', 'side0', 'type', 'veth', 'peer', 'name', 'side0r', 'netns', box.remoteNs])
  for (const [where, link, v4, v6] of [
    ['pod', 'side0', SIDE.pod, SIDE.pod6],
    ['remote', 'side0r', SIDE.remote, SIDE.remote6],
  ] as const) {
    await box.exec(where, 'ip', ['addr', 'add', `${v4}/24`, 'dev', link])
    await box.exec(where, 'ip', ['addr', 'add', `${v6}/64`, 'dev', link, 'nodad'])
    await box.exec(where, 'ip', ['link', 'set', link, 'up'])
  }
}
