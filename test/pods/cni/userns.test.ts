// User-namespaced pods (hostUsers: false) through libcni and the node agent, built as runc builds them: the pod's
// user namespace with its map written first, then the netns inside it, a veth to a remote namespace. The agent
// enters the pod's user namespace for every tool, so the owner match exempts the proxy's in-pod UID 1337 and
// captures the app's in-pod UID 1000, on every backend and in both families.
import t from 'tap'
import type { Sandbox } from '../../../src/sandbox/sandbox.js'
import { realExec } from '../../../src/exec/exec.js'
import { runForStatus } from '../../../src/exec/processes.js'
import { startRig } from '../../helpers/cni.js'
import { kernelAvailable, POD_USERNS_MAP, programs, snapshot, withSandbox } from '../../helpers/kernel.js'
import { expectDefaultCapture } from '../../helpers/traffic.js'

const CAPTURED = { captureAll: true, capabilities: { 'io.kubernetes.cri.pod-annotations': true } }
const BACKENDS = ['iptables-nft', 'iptables-legacy', 'nftables'] as const

// A foreign rule in each nat table an iptables variant uses (clean leaves a built-in chain that init made, empty:
// to iptables the same as none, but a snapshot would show it). UDP, so no TCP path is changed. Written from the
// node's user namespace, where iptables-legacy can take the node's xtables lock.
const addForeign = async (box: Sandbox, variants: readonly string[]): Promise<void> => {
  for (const variant of variants)
    for (const tool of [`iptables-${variant}`, `ip6tables-${variant}`])
      for (const chain of ['PREROUTING', 'OUTPUT'])
        await realExec('nsenter', [`--net=/run/netns/${box.podNs}`, tool, '-t', 'nat', '-A', chain, '-p', 'udp', '--dport', '5353', '-j', 'RETURN'])
}

for (const backend of BACKENDS) {
  t.test(`${backend}: ADD captures the app (in-pod UID 1000) and lets the proxy (in-pod UID 1337) out directly, both families`, async t => {
    if (!kernelAvailable(t)) return
    const rig = await startRig(t)
    const box = await withSandbox(t, undefined, { usernsMap: POD_USERNS_MAP })
    await addForeign(box, backend === 'nftables' ? [] : [backend.slice('iptables-'.length)])
    const before = await snapshot(box, 'netfilter')
    const list = rig.conflist({ ...CAPTURED, settings: { ISTIO_PROXY_PORT: '15001', ISTIO_BACKEND: backend } })
    const add = await rig.runtime(box, 'add', list)
    t.equal(add.exitCode, 0, 'ADD succeeds', { output: add.output })
    await box.serve('pod', ['proxy=[::]:15001', 'app=[::]:8080'])
    await box.serve('remote', ['remote=[::]:9090'])
    await expectDefaultCapture(t, box)
    const check = await rig.runtime(box, 'check', list)
    t.equal(check.exitCode, 0, 'CHECK passes', { output: check.output })
    const del = await rig.runtime(box, 'del', list)
    t.equal(del.exitCode, 0, 'DEL succeeds', { output: del.output })
    t.equal(await snapshot(box, 'netfilter'), before, 'DEL leaves the netns as it was')
  })
}

t.test('the live probe from the node runs as the pod: CHECK with ISTIO_VERIFY=live passes, and fails once the proxy UID is not exempt', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const box = await withSandbox(t, undefined, { usernsMap: POD_USERNS_MAP })
  const list = rig.conflist({ ...CAPTURED, settings: { ISTIO_PROXY_PORT: '15001', ISTIO_VERIFY: 'live' } })
  const add = await rig.runtime(box, 'add', list)
  t.equal(add.exitCode, 0, 'ADD with the live probe succeeds', { output: add.output })
  const check = await rig.runtime(box, 'check', list)
  t.equal(check.exitCode, 0, 'CHECK (verify with the live probe) passes', { output: check.output })
  // The probe's bypass check connects as the pod's 1337; a rule taking that connection too must fail it.
  await box.exec('pod', 'iptables-nft', [
    '-t',
    'nat',
    '-I',
    'OUTPUT',
    '1',
    '-p',
    'tcp',
    '-m',
    'owner',
    '--uid-owner',
    '1337',
    '-j',
    'REDIRECT',
    '--to-ports',
    '15001',
  ])
  const caught = await rig.runtime(box, 'check', list)
  t.not(caught.exitCode, 0, "CHECK fails when the proxy's own connections are redirected", { output: caught.output })
  await rig.runtime(box, 'del', list)
})

t.test("init from the node's user namespace, not the pod's: the kernel's refusal of the owner rule is named as such", async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t, undefined, { usernsMap: POD_USERNS_MAP })
  await addForeign(box, ['nft', 'legacy'])
  const before = await snapshot(box, 'netfilter')
  for (const backend of ['iptables-nft', 'iptables-legacy']) {
    // Run as the node's root, entering only the pod's netns, as an agent that did not enter the user namespace would.
    const result = await runForStatus('nsenter', [`--net=/run/netns/${box.podNs}`, process.execPath, programs().cli, 'init'], {
      ...process.env,
      ISTIO_VERIFY: 'rules',
      ISTIO_BACKEND: backend,
    })
    t.equal(result.exitCode, 4, `${backend}: exit 4`, { output: result.output })
    t.match(
      result.output,
      /refused the owner \(UID\/GID\) rules because this network namespace belongs to another user namespace/,
      `${backend}: says why`,
    )
  }
  t.equal(await snapshot(box, 'netfilter'), before, 'nothing was changed')
})
