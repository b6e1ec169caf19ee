// Re-runs, clean, races and drift, on real rules in sandbox namespaces (refusals in refused/, the golden
// plans in goldens/: each file stays well inside tap's time limit on a loaded machine).
import t from 'tap'
import { initOk, kernelAvailable, snapshot, withSandbox } from '../../helpers/kernel.js'
import { IPTABLES_BACKENDS as BACKENDS } from '../../helpers/rows.js'

const TOOLS = { 'iptables-nft': 'iptables-nft', 'iptables-legacy': 'iptables-legacy' } as const

for (const backend of BACKENDS) {
  const env = { ISTIO_BACKEND: backend }
  const iptables = TOOLS[backend]

  t.test(`${backend}: init is idempotent; clean restores the exact earlier ruleset, foreign rules included`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    // Foreign rules in both families' nat tables, around and before where ours go.
    const foreign = [
      ['-t', 'nat', '-N', 'FOREIGN'],
      ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '25', '-j', 'FOREIGN'],
      ['-t', 'nat', '-A', 'PREROUTING', '-p', 'udp', '-j', 'RETURN'],
      ['-t', 'nat', '-A', 'FOREIGN', '-j', 'RETURN'],
      ['-t', 'filter', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'],
    ]
    for (const args of foreign) {
      await box.exec('pod', iptables, args)
      await box.exec('pod', iptables.replace('iptables', 'ip6tables'), args)
    }
    const before = await snapshot(box)
    const first = await initOk(t, box, env)
    t.match(first, /applied/)
    const afterFirst = await snapshot(box)
    t.not(afterFirst, before, 'init changed the ruleset')
    for (const run of [2, 3]) {
      const output = await initOk(t, box, env)
      t.match(output, /already in place, left untouched/, `run ${run} sees nothing to do`)
      t.equal(await snapshot(box), afterFirst, `run ${run} leaves the identical ruleset`)
    }
    await initOk(t, box, env, ['clean'])
    t.equal(await snapshot(box), before, 'clean restores the exact earlier ruleset')
    await initOk(t, box, env, ['clean'])
    t.equal(await snapshot(box), before, 'a second clean changes nothing')
  })

  t.test(`${backend}: in a fresh namespace, clean leaves no chain or rule behind, even told to leave IPv6 alone`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await initOk(t, box, env)
    await initOk(t, box, { ...env, ISTIO_IPV6: 'false' }, ['clean'])
    for (const family of ['iptables', 'ip6tables']) {
      const save = (await box.exec('pod', `${family}-${iptables.split('-')[1]}-save`, [])).stdout
      t.notMatch(save, /^-A /m, `${family}: no rules`)
      t.notMatch(save, /^:(?!(PREROUTING|INPUT|OUTPUT|POSTROUTING) ACCEPT )/m, `${family}: only empty built-in chains`)
    }
  })

  t.test(`${backend}: inits started at the same moment end in one correct ruleset`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const results = await Promise.all([1, 2, 3, 4].map(() => box.runInit({ ...env, ISTIO_VERIFY: 'rules' })))
    t.same(
      results.map(r => r.exitCode),
      [0, 0, 0, 0],
      'all exit 0',
      { results },
    )
    await initOk(t, box, env, ['verify'])
    const save = (await box.exec('pod', `${iptables}-save`, [])).stdout
    t.equal(save.match(/-j SIDECAR_OUTBOUND/g)?.length, 1, 'one jump to the outbound chain')
    t.equal(save.match(/-j SIDECAR_INBOUND/g)?.length, 1, 'one jump to the inbound chain')
  })

  t.test(`${backend}: verify catches a deleted and an added rule, and init repairs them`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await initOk(t, box, env)
    await box.exec('pod', iptables, ['-t', 'nat', '-D', 'SIDECAR_OUTBOUND', '2'])
    const deleted = await box.runInit(env, ['verify'])
    t.equal(deleted.exitCode, 5, 'verify exits 5 on a deleted rule')
    t.match(deleted.output, /- -A SIDECAR_OUTBOUND -p tcp -m owner --uid-owner 1337/, 'names the missing rule')
    await initOk(t, box, env)
    await initOk(t, box, env, ['verify'])
    await box.exec('pod', iptables.replace('iptables', 'ip6tables'), ['-t', 'nat', '-I', 'SIDECAR_OUTBOUND', '1', '-p', 'tcp', '-j', 'RETURN'])
    const added = await box.runInit(env, ['verify'])
    t.equal(added.exitCode, 5, 'verify exits 5 on an added rule')
    t.match(added.output, /ipv6:[\s\S]*\+ -A SIDECAR_OUTBOUND -p tcp -j RETURN/, 'names the added rule and its family')
    await box.exec('pod', iptables, ['-t', 'nat', '-D', 'OUTPUT', '1'])
    const jump = await box.runInit(env, ['verify'])
    t.match(jump.output, /jumps from built-in chains:\n.*- -A OUTPUT/, 'a missing jump is drift too')
  })
}

t.test('auto picks legacy where the namespace already uses it, and says why', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await box.exec('pod', 'iptables-legacy', ['-t', 'filter', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'])
  const output = await initOk(t, box, {})
  t.match(output, /backend\s+iptables-legacy: this namespace uses iptables-legacy/)
  t.match((await box.exec('pod', 'iptables-legacy-save', [])).stdout, /SIDECAR_OUTBOUND/)
  t.notMatch((await box.exec('pod', 'iptables-nft-save', [])).stdout, /SIDECAR/, 'nothing written to nf_tables')
})

t.test('the JSON report is one object with settings, backend, timings', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const result = await box.runInit({ ISTIO_LOG_FORMAT: 'json', ISTIO_VERIFY: 'rules' })
  const lines = result.output.trim().split('\n')
  t.equal(lines.length, 1)
  const report = JSON.parse(lines[0] ?? '') as Record<string, unknown>
  t.equal(report['event'], 'init')
  t.match(report, { settings: { ISTIO_PROXY_PORT: '5001' }, backend: String, families: String, timings: { totalMs: Number } })
  const refused = await box.runInit({ ISTIO_LOG_FORMAT: 'json', ISTIO_PROXY_PORT: 'x' })
  t.match(JSON.parse(refused.output.trim()), { event: 'error', code: 'E_CONFIG' })
})

// Each process costs a few milliseconds of every pod's start: the report counts them all.
t.test('processes per init, as reported: 3 per family fresh plus the ruleset and two device reads, 1 per family plus those on a re-run', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const processes = async (env: Record<string, string>): Promise<number> => {
    const result = await box.runInit({ ISTIO_LOG_FORMAT: 'json', ISTIO_VERIFY: 'rules', ...env })
    t.equal(result.exitCode, 0, JSON.stringify(env), { output: result.output })
    return (JSON.parse(result.output.trim()) as { processes: number }).processes
  }
  // Legacy last: once its tables exist, the whole-path check of the others reads them too (and should).
  for (const [backend, fresh, rerun] of [
    ['nftables', 5, 3],
    // iptables-nft, fresh: one more, the nft transaction that makes the nat tables marked as ours.
    ['auto', 10, 5],
    ['iptables-legacy', 9, 5],
  ] as const) {
    t.equal(await processes({ ISTIO_BACKEND: backend }), fresh, `${backend}: fresh`)
    t.equal(await processes({ ISTIO_BACKEND: backend }), rerun, `${backend}: re-run with nothing to change`)
    await initOk(t, box, { ISTIO_BACKEND: backend }, ['clean'])
  }
})
