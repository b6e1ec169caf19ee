// We touch only what is ours, by exact name and comment: look-alike chains, comments and sets of other tools survive
// init, re-runs and clean byte for byte; an object that has one of our names but is not ours is refused (exit 3)
// with nothing changed. Also fail-closed corners that need the kernel: a non-canonical CIDR, a hidden IPv6 config.
import t from 'tap'
import { initOk, kernelAvailable, snapshot, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS, IPTABLES_BACKENDS } from '../../helpers/rows.js'
import { expectCaptured } from '../../helpers/traffic.js'

// Another tool's rules whose names and comments start like ours, in both families' nat tables.
const LOOK_ALIKES: string[][] = [
  ['-t', 'nat', '-N', 'SIDECAR_ANYTHING'],
  ['-t', 'nat', '-A', 'SIDECAR_ANYTHING', '-p', 'udp', '-j', 'RETURN'],
  ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '-j', 'SIDECAR_ANYTHING'],
  ['-t', 'nat', '-A', 'POSTROUTING', '-p', 'udp', '-m', 'comment', '--comment', 'sidecar-redirect/outbound-masquerade', '-j', 'MASQUERADE'],
  ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '-m', 'comment', '--comment', 'sidecar-redirect/', '-j', 'RETURN'],
  // Our own comment on a rule that is not our jump: ours are recognised by their whole text, not a comment alone.
  ['-t', 'nat', '-A', 'PREROUTING', '-p', 'udp', '-m', 'comment', '--comment', 'sidecar-redirect/inbound', '-j', 'RETURN'],
]

for (const backend of BACKENDS) {
  t.test(`${backend}: look-alike chains, comments, sets and tables of others survive init, re-run and clean byte-identical`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    for (const tool of IPTABLES_BACKENDS) {
      for (const args of LOOK_ALIKES) {
        await box.exec('pod', tool, args)
        await box.exec('pod', tool.replace('iptables', 'ip6tables'), args)
      }
    }
    await box.exec('pod', 'ipset', ['create', 'SIDECAR_SVC4_OTHER', 'hash:net'])
    await box.exec('pod', 'ipset', ['create', 'SIDECAR_SVCX', 'hash:ip'])
    await box.exec('pod', 'nft', ['add table inet sidecar_redirect_other'])
    const before = await snapshot(box)
    const env = { ISTIO_BACKEND: backend, ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.2:9090' }
    await initOk(t, box, env)
    await initOk(t, box, env)
    const during = await snapshot(box)
    for (const line of before
      .split('\n')
      .filter(l => /SIDECAR_(ANYTHING|SVC4_OTHER|SVCX)|sidecar-redirect\/(outbound-masquerade|inbound)?"|sidecar_redirect_other/.test(l))) {
      t.ok(during.includes(line), `kept: ${line}`)
    }
    await initOk(t, box, env, ['clean'])
    t.equal(await snapshot(box), before, 'clean leaves exactly what was there before')
  })
}

for (const backend of IPTABLES_BACKENDS) {
  t.test(`${backend}: a chain or set that has our name but is not ours is refused, nothing changed`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.exec('pod', backend, ['-t', 'nat', '-N', 'SIDECAR_OUTBOUND'])
    await box.exec('pod', backend, ['-t', 'nat', '-A', 'SIDECAR_OUTBOUND', '-p', 'tcp', '-j', 'RETURN'])
    const before = await snapshot(box)
    for (const command of ['init', 'clean']) {
      const result = await box.runInit({ ISTIO_BACKEND: backend, ISTIO_VERIFY: 'rules' }, [command])
      t.equal(result.exitCode, 3, `${command} exits 3`, { output: result.output })
      t.match(
        result.output,
        new RegExp(`${backend} ipv4 nat: chain SIDECAR_OUTBOUND has our name but is not ours.*-A SIDECAR_OUTBOUND -p tcp -j RETURN`),
      )
      t.equal(await snapshot(box), before, `${command} changed nothing`)
    }
    await box.exec('pod', backend, ['-t', 'nat', '-F', 'SIDECAR_OUTBOUND'])
    await box.exec('pod', backend, ['-t', 'nat', '-X', 'SIDECAR_OUTBOUND'])
    await box.exec('pod', 'ipset', ['create', 'SIDECAR_SVC4', 'hash:ip'])
    const withSet = await snapshot(box)
    const refused = await box.runInit({
      ISTIO_BACKEND: backend,
      ISTIO_VERIFY: 'rules',
      ISTIO_OUTBOUND_METHOD: 'explicit',
      ISTIO_SERVICES: '198.18.0.2',
    })
    t.equal(refused.exitCode, 3, 'a foreign set with our name: exit 3', { output: refused.output })
    t.match(refused.output, /ipset SIDECAR_SVC4 has our name but is not ours/)
    t.equal(await snapshot(box), withSet, 'nothing changed')
    await initOk(t, box, { ISTIO_BACKEND: backend }, ['clean'])
    t.equal(await snapshot(box), withSet, 'clean leaves the foreign set alone')
  })
}

for (const backend of IPTABLES_BACKENDS) {
  t.test(`${backend}: clean refuses while a foreign rule jumps into our chain, in either family, and removes nothing in any`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await initOk(t, box, { ISTIO_BACKEND: backend })
    const ip6tables = backend.replace('iptables', 'ip6tables')
    await box.exec('pod', ip6tables, ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '-j', 'SIDECAR_OUTBOUND'])
    const before = await snapshot(box)
    const result = await box.runInit({ ISTIO_BACKEND: backend }, ['clean'])
    t.equal(result.exitCode, 3, 'clean exits 3', { output: result.output })
    t.match(result.output, new RegExp(`${backend} ipv6: rules that are not ours jump into our chains \\(-A OUTPUT -p udp -j SIDECAR_OUTBOUND\\)`))
    t.equal(await snapshot(box), before, 'IPv4 was not cleaned either: nothing changed')
    await box.exec('pod', ip6tables, ['-t', 'nat', '-D', 'OUTPUT', '-p', 'udp', '-j', 'SIDECAR_OUTBOUND'])
    await initOk(t, box, { ISTIO_BACKEND: backend }, ['clean'])
    t.notMatch(await snapshot(box, 'netfilter'), /SIDECAR_/, 'once it is gone, clean removes everything of ours')
  })
}

t.test('nftables: a table with our name but not our comment is refused, nothing changed', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await box.exec('pod', 'nft', ['add table inet sidecar_redirect'])
  await box.exec('pod', 'nft', ['add chain inet sidecar_redirect c { type filter hook output priority 0; }'])
  const before = await snapshot(box)
  for (const command of ['init', 'clean']) {
    const result = await box.runInit({ ISTIO_BACKEND: 'nftables', ISTIO_VERIFY: 'rules' }, [command])
    t.equal(result.exitCode, 3, `${command} exits 3`, { output: result.output })
    t.match(result.output, /table inet sidecar_redirect has our name but is not ours/)
    t.equal(await snapshot(box), before, `${command} changed nothing`)
  }
})

for (const backend of BACKENDS) {
  t.test(`${backend}: a CIDR in a non-canonical IPv6 form is applied as the kernel prints it, and re-runs are exact`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const env = { ISTIO_BACKEND: backend, ISTIO_OUTBOUND_EXCLUDE_CIDRS: '0:0:0:0:0:0:c612:9/128,::ffff:198.18.0.9' }
    await initOk(t, box, env)
    t.match(await initOk(t, box, env), /already in place, left untouched/)
    await initOk(t, box, env, ['verify'])
  })
}

t.test('an IPv6 config that lists no interface is not taken as "no IPv6": IPv6 is still captured', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await box.serve('pod', ['proxy=[::]:5001'])
  await box.serve('remote', ['remote=[::]:9090'])
  // An empty tmpfs over /proc/sys/net/ipv6/conf in a mount namespace of init's own hides every interface.
  const hidden = await box.tryExec(
    'pod',
    'unshare',
    [
      '-m',
      'sh',
      '-c',
      `mount -t tmpfs none /proc/sys/net/ipv6/conf && ls /proc/sys/net/ipv6/conf | wc -l && exec "$0" "$@"`,
      process.execPath,
      new URL('../../../dist/cli.mjs', import.meta.url).pathname,
      'init',
    ],
    { ISTIO_VERIFY: 'rules' },
  )
  t.equal(hidden.exitCode, 0, 'init exits 0', { output: hidden.output })
  t.match(hidden.output, /^0$/m, 'the interfaces were hidden')
  t.match(hidden.output, /families\s+ipv4, ipv6: the kernel has IPv6, though \/proc\/sys\/net\/ipv6\/conf lists no interface/)
  await expectCaptured(t, box, { from: 'pod', host: '2001:db8::2', port: 9090 })
})
