// `entrypoint istio-iptables` as Istio's init and validation containers run it: the exit codes Istio's tooling
// keys on, validation as the proxy UID with no capability (126 without capture, 0 with it), verify after it.
// Each kind of escape the whole-path check knows, in this mode too: istio-escapes-*.test.ts.
import t from 'tap'
import { kernelAvailable, programs, snapshot } from '../../helpers/kernel.js'
import { BACKEND_ARGS, expectCode, INIT_ARGS, pod } from '../../helpers/istio-box.js'
import { BACKENDS } from '../../helpers/rows.js'

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
    // The tables a run creates stay (empty) after clean, as docs/capture.md says: made first, so they are in `before`.
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
