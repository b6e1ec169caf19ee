// IPv6 is captured whenever the namespace has it, and never half: a refused IPv6 apply takes IPv4 back too.
import t from 'tap'
import { initOk, kernelAvailable, snapshot, withSandbox } from '../../helpers/kernel.js'
import { linksWithout, refusingIpv6Path } from '../../helpers/paths.js'
import { IPTABLES_BACKENDS as BACKENDS } from '../../helpers/rows.js'

for (const backend of BACKENDS) {
  const env = { ISTIO_BACKEND: backend }

  t.test(`${backend}: a refused IPv6 apply rolls IPv4 back, from empty and from earlier rules`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const PATH = refusingIpv6Path()
    // The nat tables and chains exist already, as they would in a pod: a rollback cannot un-create a table
    // (legacy) or a base chain (nf_tables makes one when first used).
    for (const tool of ['iptables', 'ip6tables']) {
      for (const chain of ['PREROUTING', 'OUTPUT']) {
        await box.exec('pod', `${tool}-${backend.split('-')[1]}`, ['-t', 'nat', '-A', chain, '-p', 'udp', '-j', 'RETURN'])
      }
    }
    const empty = await snapshot(box)
    const fresh = await box.runInit({ ...env, PATH })
    t.equal(fresh.exitCode, 4, 'apply failure exits 4', { output: fresh.output })
    t.match(fresh.output, /ipv6: the kernel refused the transaction at line 3/)
    t.equal(await snapshot(box), empty, 'IPv4 is rolled back to nothing')

    await initOk(t, box, env)
    const earlier = await snapshot(box)
    const changed = await box.runInit({ ...env, PATH, ISTIO_OUTBOUND_EXCLUDE_PORTS: '443', ISTIO_PROXY_UID: '2000' })
    t.equal(changed.exitCode, 4)
    t.equal(await snapshot(box), earlier, 'IPv4 is rolled back to the earlier rules')
  })

  t.test(`${backend}: a rollback puts our jumps back where they were, after a foreign rule apply had moved them past`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await initOk(t, box, env)
    // A foreign RETURN ahead of our nat OUTPUT jump can end the chain before it: apply moves our jump to the front.
    await box.exec('pod', `iptables-${backend.split('-')[1]}`, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-d', '198.18.0.99', '-j', 'RETURN'])
    const earlier = await snapshot(box)
    const refused = await box.runInit({ ...env, PATH: refusingIpv6Path(), ISTIO_OUTBOUND_EXCLUDE_PORTS: '443' })
    t.equal(refused.exitCode, 4, 'the IPv6 refusal exits 4', { output: refused.output })
    t.equal(await snapshot(box), earlier, 'IPv4 is as it was: the foreign rule first, our jump after it')
  })

  t.test(`${backend}: with IPv6 disabled, auto captures IPv4 only and true refuses`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.exec('pod', 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
    const before = await snapshot(box)
    const required = await box.runInit({ ...env, ISTIO_IPV6: 'true' })
    t.equal(required.exitCode, 3, 'true on an IPv6-less namespace is an environment error')
    t.match(required.output, /ISTIO_IPV6=true but IPv6 is disabled on every interface/)
    t.equal(await snapshot(box), before, 'nothing changed')
    const output = await initOk(t, box, env)
    t.match(output, /families\s+ipv4: IPv6 is disabled on every interface/)
    const v6 = (await box.exec('pod', `ip6tables-${backend.split('-')[1]}-save`, [])).stdout
    t.notMatch(v6, /SIDECAR/, 'no IPv6 rules')
  })

  t.test(`${backend}: IPv6 on a single interface other than the first still counts`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.exec('pod', 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1'])
    await box.exec('pod', 'ip', ['link', 'add', 'sr-x0', 'type', 'veth', 'peer', 'name', 'sr-x1'])
    await box.exec('pod', 'sysctl', ['-qw', 'net.ipv6.conf.sr-x0.disable_ipv6=1', 'net.ipv6.conf.sr-x1.disable_ipv6=0'])
    const output = await initOk(t, box, env)
    t.match(output, /families\s+ipv4, ipv6: IPv6 is enabled on sr-x1\n/)
    await initOk(t, box, env, ['verify'])
  })
}

t.test('a missing match extension is named plainly, exits 3, and changes nothing', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  // An xtables directory holding every extension but the cgroup match, as an iptables build without it would.
  const dir = linksWithout(['/usr/lib/x86_64-linux-gnu/xtables'], /^libxt_cgroup\.so$/)
  await initOk(t, box, {})
  const before = await snapshot(box)
  const result = await box.runInit({ ISTIO_OUTBOUND_METHOD: 'cgroup', XTABLES_LIBDIR: dir })
  t.equal(result.exitCode, 3, { output: result.output })
  t.match(result.output, /the "cgroup" extension is missing \(the iptables package's libxt_cgroup.so, or the kernel's xt_cgroup module\)/)
  t.equal(await snapshot(box), before, 'the earlier rules are untouched, in both families')
})
