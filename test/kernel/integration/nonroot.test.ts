// init, verify and clean as uid 65534 holding only NET_ADMIN and NET_RAW, given as ambient capabilities (setpriv,
// as a securityContext's capabilities reach a non-root container) or as file capabilities on a copy of node (as
// Linkerd's proxy-init gets them), on every backend. Legacy's list of tables (/proc/net/ip_tables_names, 0440 root)
// is then unreadable: traffic shows capture works all the same, and clean leaves the namespace as it found it,
// foreign rules of both iptables variants included.
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/sandbox/sandbox.js'
import { realExec } from '../../../src/exec/exec.js'
import { kernelAvailable, programs, snapshot, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectDefaultCapture } from '../../helpers/traffic.js'

const NOBODY = 65534
const AS_NOBODY = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups']
const CAPS = '-all,+net_admin,+net_raw'

// A private copy of node with the capabilities in its file: the machine's own node is never changed.
let capped: string | undefined
const fileCappedNode = async (): Promise<string> => {
  if (!capped) {
    const dir = mkdtempSync(`${tmpdir()}/sr-capped-node-`)
    chmodSync(dir, 0o755)
    copyFileSync(process.execPath, `${dir}/node`)
    chmodSync(`${dir}/node`, 0o755)
    await realExec('setcap', ['cap_net_admin,cap_net_raw+ep', `${dir}/node`])
    capped = `${dir}/node`
    // Kept for every test of this file, removed at its end.
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  }
  return capped
}

/** How each way starts node as uid 65534 with the two capabilities and nothing else within reach. */
const WAYS = {
  ambient: async () => [...AS_NOBODY, `--inh-caps=${CAPS}`, `--ambient-caps=${CAPS}`, `--bounding-set=${CAPS}`, process.execPath],
  file: async () => [...AS_NOBODY, '--inh-caps=-all', `--bounding-set=${CAPS}`, await fileCappedNode()],
} as const

// iptables-legacy's lock must be a file the caller may open: the machine's /run/xtables.lock is root's, 0600.
const lockDir = (t: Test): string => {
  const dir = mkdtempSync(`${tmpdir()}/sr-xtables-`)
  chownSync(dir, NOBODY, NOBODY)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const FOREIGN = [
  ['-t', 'nat', '-A', 'PREROUTING', '-p', 'udp', '--dport', '53', '-j', 'RETURN'],
  ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '25', '-j', 'RETURN'],
]

const setUp = async (t: Test): Promise<{ box: Sandbox; before: string }> => {
  const box = await withSandbox(t)
  for (const tool of ['iptables-legacy', 'ip6tables-legacy', 'iptables-nft', 'ip6tables-nft'])
    for (const args of FOREIGN) await box.exec('pod', tool, args)
  return { box, before: await snapshot(box) }
}

for (const [way, launcher] of Object.entries(WAYS)) {
  for (const backend of [...BACKENDS, 'auto'] as const) {
    t.test(`${backend}, as uid ${NOBODY} with ${way} capabilities: init, capture, verify, clean`, async t => {
      if (!kernelAvailable(t)) return
      const { box, before } = await setUp(t)
      const argv = await launcher()
      const run = async (command: string): Promise<string> => {
        const env = { ISTIO_BACKEND: backend, XTABLES_LOCKFILE: `${lockDir(t)}/xtables.lock` }
        const result = await box.tryExec('pod', argv[0]!, [...argv.slice(1), programs().cli, command], env)
        t.equal(result.exitCode, 0, `${command} exits 0`, { output: result.output })
        return result.output
      }
      const peek = await box.tryExec('pod', argv[0]!, [...argv.slice(1), '-e', "require('fs').readFileSync('/proc/net/ip_tables_names')"])
      t.match(peek.output, /EACCES/, "legacy's list of tables is unreadable here, as in a non-root init container")
      const init = await run('init')
      if (backend === 'auto')
        t.match(init, /backend\s+iptables-nft: iptables-legacy tables cannot be listed \(\/proc\/net\/ip_tables_names is not readable/)
      t.match(init, /live\s+ipv4 capture: passed, uid 65534 \(an app identity\)/, 'the live probe ran, as this process')
      t.match(init, /ipv4 bypass: not checked, cannot act as uid 1337/, 'and said what it could not check without CAP_SETUID')
      // The listeners start after init: its live probe listens on the proxy port itself.
      await box.serve('pod', ['proxy=[::]:5001', 'app=[::]:8080'])
      await box.serve('remote', ['remote=[::]:9090'])
      await expectDefaultCapture(t, box)
      t.match(await run('verify'), /ok/)
      await run('clean')
      t.equal(await snapshot(box), before, 'clean leaves exactly what was there, foreign rules of both variants included')
    })
  }
}
