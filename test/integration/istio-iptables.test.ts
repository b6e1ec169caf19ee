// `entrypoint istio-iptables` as Istio's init and validation containers run it: the exit codes Istio's tooling
// keys on, validation as the proxy UID with no capability (126 without capture, 0 with it), verify after it, and
// each kind of escape the whole-path check knows, in this mode too, confirmed by a real connection.
import t, { type Test } from 'tap'
import type { Sandbox } from '../../src/commands/sandbox.js'
import type { Status } from '../../src/exec/processes.js'
import { foreignOf, kernelAvailable, programs, REMOTE, REMOTE6, snapshot, withSandbox } from '../helpers/kernel.js'
import { INJECTOR_ARGS } from '../helpers/istio-matrix.js'
import { BACKENDS } from '../helpers/rows.js'
import { expectBypassed, expectCaptured, type Path } from '../helpers/traffic.js'

type Backend = (typeof BACKENDS)[number]

const INIT_ARGS = INJECTOR_ARGS
const BACKEND_ARGS: Record<Backend, string[]> = {
  'iptables-nft': ['--force-iptables-binary', 'nft'],
  'iptables-legacy': ['--force-iptables-binary', 'legacy'],
  nftables: ['--native-nftables'],
}
const OWN: Record<Backend, string | undefined> = { 'iptables-nft': 'iptables-nft', 'iptables-legacy': 'iptables-legacy', nftables: undefined }
const OTHER: Record<Backend, string> = { 'iptables-nft': 'iptables-legacy', 'iptables-legacy': 'iptables-nft', nftables: 'iptables-legacy' }

/** Runs the CLI in the pod, as root or (uid given) as that UID with every capability set empty. */
const entrypoint = (box: Sandbox, args: readonly string[], as?: { uid: number; gid: number }): Promise<Status> => {
  const { cli } = programs()
  if (!as) return box.tryExec('pod', process.execPath, [cli, ...args])
  const drop = [`--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs']
  return box.tryExec('pod', 'setpriv', [...drop, process.execPath, cli, ...args])
}

const expectCode = async (t: Test, box: Sandbox, args: readonly string[], code: number, as?: { uid: number; gid: number }): Promise<string> => {
  const result = await entrypoint(box, args, as)
  t.equal(result.exitCode, code, `${args.slice(0, 2).join(' ')}${as ? ` as uid ${as.uid}` : ''} exits ${code}`, { output: result.output })
  return result.output
}

const pod = async (t: Test): Promise<Sandbox> => {
  const box = await withSandbox(t)
  // A default route, as a pod has: the live probe's outbound check dials a documentation address through it.
  await box.exec('pod', 'ip', ['route', 'add', 'default', 'via', REMOTE])
  await box.exec('pod', 'ip', ['-6', 'route', 'add', 'default', 'via', REMOTE6])
  return box
}

const OUT: Path = { from: 'pod', host: REMOTE, port: 9090, as: { uid: 1000 } }

t.test("the command line: pilot-agent's refusals exit 255, Istio's errors 1, help 0", async t => {
  if (!kernelAvailable(t)) return
  const box = await pod(t)
  const before = await snapshot(box)
  const unknown = await expectCode(t, box, ['istio-iptables', ...INIT_ARGS, '--bogus'], 255)
  t.match(unknown, /^Error: unknown flag: --bogus$/m, "cobra's line, on stderr")
  await expectCode(t, box, ['istio-iptables', '-p'], 255)
  await expectCode(t, box, ['istio-iptables', '--dry-run=maybe'], 255)
  await expectCode(t, box, ['istio-iptables', '--log_output_level=default:loud'], 255)
  const refused = await expectCode(t, box, ['istio-iptables', ...INIT_ARGS, '-b', '80-90'], 1)
  t.match(refused, /--istio-inbound-ports="80-90" is not valid/)
  t.match(await expectCode(t, box, ['istio-iptables', '--help'], 0), /--istio-service-cidr string .*\[env ISTIO_SERVICE_CIDR\]/)
  // Our own commands on Istio's command line keep our codes.
  await expectCode(t, box, ['verify', 'istio-iptables', '--bogus'], 2)
  // Without NET_ADMIN nothing can be written: exit 1, as Istio's apply error.
  await expectCode(t, box, ['istio-iptables', ...INIT_ARGS], 1, { uid: 1000, gid: 1000 })
  t.equal(await snapshot(box), before, 'nothing changed by any of them')
})

t.test('logging as pilot-agent: JSON lines with --log_as_json, nothing at level none', async t => {
  if (!kernelAvailable(t)) return
  const box = await pod(t)
  const json = await expectCode(t, box, ['istio-iptables', ...INIT_ARGS, '--log_as_json'], 0)
  const lines = json.trim().split('\n')
  t.ok(lines.length > 0 && lines.every(l => /^\{"level":"(info|warn)","time":"\d{4}-[^"]+Z","msg":/.test(l)), 'every line is one JSON object', {
    json,
  })
  t.match(JSON.parse(lines.at(-1)!), { level: 'info', msg: /istio-iptables: ok/, verified: ['ipv4: read back exactly as planned'] })
  t.equal(await expectCode(t, box, ['istio-iptables', ...INIT_ARGS, '--log_output_level=default:none'], 0), '', 'level none: silent')
  const text = await expectCode(t, box, ['istio-iptables', ...INIT_ARGS], 0)
  t.match(text, /^\d{4}-\d\d-\d\dT[\d:.]+Z\tinfo\tsidecar-redirect istio-iptables: ok/m, "Istio's text lines")
})

for (const backend of BACKENDS) {
  const args = [...INIT_ARGS, ...BACKEND_ARGS[backend]]
  t.test(`${backend}: validation as Istio's istio-validation runs it: 126 without capture, 0 with it`, async t => {
    if (!kernelAvailable(t)) return
    const box = await pod(t)
    const validate = ['istio-iptables', ...args, '--run-validation', '--skip-rule-apply']
    const proxy = { uid: 1337, gid: 1337 }
    const app = { uid: 1000, gid: 1000 }
    const missing = await expectCode(t, box, validate, 126, proxy)
    t.match(missing, /validation failed/)
    t.match(missing, /proxy-to-self: failed, proxy uid 1337 gid 1337 -> 198\.18\.0\.1:\d+ reached its destination, not port 15006/)
    await expectCode(t, box, validate, 126, app)
    await expectCode(t, box, ['istio-iptables', ...args, '--dual-stack'], 0)
    const passed = await expectCode(t, box, [...validate, '--dual-stack'], 0, proxy)
    t.match(passed, /ipv4 proxy-to-self: passed/)
    t.match(passed, /ipv6 proxy-to-self: passed/)
    t.match(passed, /ipv4 istio-validation: passed, .* -> 127\.0\.0\.6:15002 reached port 15006/, "Istio's own path, among them")
    t.match(await expectCode(t, box, [...validate, '--dual-stack'], 0, app), /ipv4 app-outbound: passed/, 'an app UID proves its own paths')
    // Validation alongside the apply, as root (Istio's --run-validation without --skip-rule-apply).
    await expectCode(t, box, ['istio-iptables', ...args, '--dual-stack', '--run-validation'], 0)
    await expectCode(t, box, ['clean', 'istio-iptables', ...BACKEND_ARGS[backend]], 0)
    await expectCode(t, box, [...validate, '--dual-stack'], 126, proxy)
  })

  t.test(`${backend}: verify after istio-iptables, the ::6 address, dry run and cleanup-only`, async t => {
    if (!kernelAvailable(t)) return
    const box = await pod(t)
    // The tables a run creates stay (empty) after clean, as the README says: made first, so they are in `before`.
    await expectCode(t, box, ['istio-iptables', ...args, '--dual-stack'], 0)
    await expectCode(t, box, ['clean', 'istio-iptables', ...BACKEND_ARGS[backend]], 0)
    const before = await snapshot(box)
    const dry = await expectCode(t, box, ['istio-iptables', ...args, '--dual-stack', '-n'], 0)
    t.match(dry, /ISTIO_OUTPUT|istio_output/, 'the dry run prints the rules')
    t.equal(await snapshot(box), before, 'and writes none')
    await expectCode(t, box, ['istio-iptables', ...args, '--dual-stack'], 0)
    await expectCode(t, box, ['verify', 'istio-iptables', ...args, '--dual-stack'], 0)
    t.match((await box.exec('pod', 'ip', ['-6', 'addr', 'show', 'dev', 'lo'])).stdout, /inet6 ::6\/128/)
    await box.exec('pod', 'ip', ['-6', 'addr', 'del', '::6/128', 'dev', 'lo'])
    t.match(await expectCode(t, box, ['verify', 'istio-iptables', ...args, '--dual-stack'], 5), /address ::6\/128 on lo: missing/)
    await expectCode(t, box, ['istio-iptables', ...args, '--dual-stack'], 0)
    // Our own verify (our mode's plan) finds Istio's chains ours: drift from its plan, never foreign escapes.
    const ours = await box.runInit({ ISTIO_BACKEND: backend, ISTIO_VERIFY: 'rules' }, ['verify'])
    t.notMatch(ours.output, /whole path/, 'no whole-path finding names our Istio-mode rules')
    await expectCode(t, box, ['istio-iptables', ...args, '--cleanup-only'], 0)
    t.equal(await snapshot(box), before, 'cleanup-only leaves what was there')
  })
}

interface Escape {
  readonly name: string
  readonly only?: readonly Backend[]
  readonly add: (box: Sandbox, backend: Backend) => Promise<unknown>
  readonly escapes: 'fixable' | 'foreign' | false
  readonly escapedTo: string
}

const ESCAPES: readonly Escape[] = [
  {
    name: 'a RETURN ahead of the ISTIO_OUTPUT jump',
    only: ['iptables-nft', 'iptables-legacy'],
    add: (box, b) => box.exec('pod', OWN[b]!, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-d', `${REMOTE}/32`, '-j', 'RETURN']),
    escapes: 'fixable',
    escapedTo: 'remote',
  },
  {
    name: 'a DNAT in the other iptables variant',
    add: (box, b) =>
      box.exec('pod', OTHER[b], ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', REMOTE, '-j', 'DNAT', '--to-destination', `${REMOTE}:9091`]),
    escapes: 'foreign',
    escapedTo: 'remote-9091',
  },
  {
    name: 'a raw NOTRACK',
    // Both ways: a reply tracked as a new connection would meet the inbound capture.
    add: async (box, b) => {
      await box.exec('pod', OWN[b] ?? 'iptables-nft', ['-t', 'raw', '-A', 'OUTPUT', '-p', 'tcp', '-d', REMOTE, '-j', 'CT', '--notrack'])
      await box.exec('pod', OWN[b] ?? 'iptables-nft', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '-s', REMOTE, '-j', 'CT', '--notrack'])
    },
    escapes: 'foreign',
    escapedTo: 'remote',
  },
  {
    name: 'a native nft nat chain at an earlier priority',
    add: async box => {
      await box.exec('pod', 'nft', ['add table inet foreign'])
      await box.exec('pod', 'nft', ['add chain inet foreign early { type nat hook output priority -150; }'])
      await box.exec('pod', 'nft', [`add rule inet foreign early ip daddr ${REMOTE} tcp dport 9090 dnat ip to ${REMOTE}:9091`])
    },
    escapes: 'foreign',
    escapedTo: 'remote-9091',
  },
  {
    name: 'harmless: UDP ahead, a RETURN in the other variant, a later native DNAT',
    add: async (box, b) => {
      if (OWN[b]) await box.exec('pod', OWN[b]!, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'udp', '-j', 'RETURN'])
      await box.exec('pod', OTHER[b], ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-j', 'RETURN'])
      await box.exec('pod', 'nft', ['add table inet foreign'])
      await box.exec('pod', 'nft', ['add chain inet foreign late { type nat hook output priority 0; }'])
      await box.exec('pod', 'nft', [`add rule inet foreign late ip daddr ${REMOTE} tcp dport 9090 dnat ip to ${REMOTE}:9091`])
    },
    escapes: false,
    escapedTo: 'remote',
  },
]

for (const backend of BACKENDS) {
  const args = [...INIT_ARGS, ...BACKEND_ARGS[backend]]
  for (const row of ESCAPES.filter(r => !r.only || r.only.includes(backend))) {
    t.test(`${backend}: ${row.name}`, async t => {
      if (!kernelAvailable(t)) return
      const box = await pod(t)
      await expectCode(t, box, ['istio-iptables', ...args], 0)
      await box.serve('pod', ['proxy=[::]:15001', 'inbound=[::]:15006', 'app=[::]:8080'])
      await box.serve('remote', ['remote=[::]:9090', 'remote-9091=[::]:9091'])
      await expectCaptured(t, box, OUT)
      await row.add(box, backend)
      const foreign = foreignOf(await snapshot(box))
      const verified = await expectCode(t, box, ['verify', 'istio-iptables', ...args], row.escapes ? 5 : 0)
      if (row.escapes) {
        t.match(verified, /whole path: rules that can keep TCP we capture from reaching our redirect/)
        await expectBypassed(t, box, OUT, row.escapedTo)
      } else await expectCaptured(t, box, OUT)
      // Istio's run: the fixable one is fixed (our jump first, theirs untouched); a foreign one fails it, exit 1.
      await expectCode(t, box, ['istio-iptables', ...args], row.escapes === 'foreign' ? 1 : 0)
      if (row.escapes === 'fixable') {
        await expectCaptured(t, box, OUT)
        await expectCode(t, box, ['verify', 'istio-iptables', ...args], 0)
      }
      t.equal(foreignOf(await snapshot(box)), foreign, 'the foreign rules are byte-identical')
      await expectCode(t, box, ['clean', 'istio-iptables', ...BACKEND_ARGS[backend]], 0)
      t.equal(foreignOf(await snapshot(box)), foreign, '... after clean too')
    })
  }
}

t.test('--network-namespace: run from another namespace, the rules land in the one named', async t => {
  if (!kernelAvailable(t)) return
  const box = await pod(t)
  const remoteBefore = await box.exec('remote', 'iptables-nft-save', [])
  const { cli } = programs()
  const run = await box.tryExec('remote', process.execPath, [cli, 'istio-iptables', ...INIT_ARGS, '--network-namespace', `/run/netns/${box.podNs}`])
  t.equal(run.exitCode, 0, 'exit 0', { output: run.output })
  t.match((await box.exec('pod', 'iptables-nft-save', [])).stdout, /-A OUTPUT -m comment --comment "sidecar-redirect\/istio-output" -j ISTIO_OUTPUT/)
  t.equal((await box.exec('remote', 'iptables-nft-save', [])).stdout, remoteBefore.stdout, 'the namespace it ran from is untouched')
})
