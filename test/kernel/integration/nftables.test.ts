// The native nftables backend's own lifecycle: one inet table, replaced whole in one transaction, verified
// exactly, removed whole. (The traffic and method suites run over it with the iptables backends.)
import t from 'tap'
import { initOk, kernelAvailable, snapshot, withSandbox } from '../../helpers/kernel.js'

const env = { ISTIO_BACKEND: 'nftables' }

t.test('nftables: idempotent, one table for both families, and clean restores the exact earlier ruleset', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  // Foreign rules: an iptables-nft nat table and a native table of someone else's.
  await box.exec('pod', 'iptables-nft', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '25', '-j', 'RETURN'])
  await box.exec(
    'pod',
    'nft',
    ['-f', '-'],
    'table inet foreign {\n\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n',
  )
  const before = await snapshot(box)
  t.match(await initOk(t, box, env), /inet: \d+ rules in table inet sidecar_redirect, applied/)
  const after = await snapshot(box)
  t.match(after, /table inet sidecar_redirect/)
  for (const run of [2, 3]) {
    t.match(await initOk(t, box, env), /already in place, left untouched/, `run ${run} writes nothing`)
    t.equal(await snapshot(box), after, `run ${run} leaves the identical ruleset`)
  }
  await initOk(t, box, env, ['clean'])
  t.equal(await snapshot(box), before, 'clean restores the exact earlier ruleset, foreign tables included')
})

t.test('nftables: inits at the same moment end in one correct table', async t => {
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
  t.equal((await box.exec('pod', 'nft', ['list', 'tables'])).stdout.trim(), 'table inet sidecar_redirect')
})

t.test('nftables: verify catches a deleted and an added rule, and init repairs them', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await initOk(t, box, env)
  const listed = (await box.exec('pod', 'nft', ['-a', 'list', 'chain', 'inet', 'sidecar_redirect', 'output'])).stdout
  const handle = /sidecar-redirect\/proxy-uid" # handle (\d+)/.exec(listed)?.[1]
  t.ok(handle, 'found the proxy-uid rule')
  await box.exec('pod', 'nft', ['delete', 'rule', 'inet', 'sidecar_redirect', 'output', 'handle', handle ?? '0'])
  const deleted = await box.runInit(env, ['verify'])
  t.equal(deleted.exitCode, 5)
  t.match(deleted.output, /- \t\tmeta l4proto tcp meta skuid 1337 return comment "sidecar-redirect\/proxy-uid"/, 'names the missing rule')
  t.match(deleted.output, /ipv4 bypass: failed/, 'and the live probe shows what it does to traffic')
  await initOk(t, box, env)
  await box.exec('pod', 'nft', ['insert', 'rule', 'inet', 'sidecar_redirect', 'output', 'meta', 'l4proto', 'tcp', 'return'])
  const added = await box.runInit(env, ['verify'])
  t.equal(added.exitCode, 5)
  t.match(added.output, /\+ \t\tmeta l4proto tcp return/, 'names the added rule')
})

t.test('nftables: with IPv6 left alone, IPv6 traffic passes our table untouched', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  t.match(await initOk(t, box, { ...env, ISTIO_IPV6: 'false' }), /ipv4: IPv6 left alone/)
  const table = (await box.exec('pod', 'nft', ['list', 'table', 'inet', 'sidecar_redirect'])).stdout
  t.match(table, /chain output \{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tmeta nfproto ipv6 return/, 'IPv6 returns first')
  await box.serve('pod', ['proxy=[::]:5001'])
  await box.serve('remote', ['remote=[::]:9090'])
  t.equal((await box.connect('pod', '2001:db8::2', 9090)).reply?.label, 'remote', 'IPv6 outbound is not captured')
  t.equal((await box.connect('pod', '198.18.0.2', 9090)).reply?.label, 'proxy', 'IPv4 outbound is')
})
