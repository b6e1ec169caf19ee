// CNI mode through a real runtime library (libcni) and Debian's real plugins: ADD captures (real connections land
// on the proxy with their original destination), CHECK sees drift, DEL removes ours and nothing else, and a pod
// that is not captured, or is refused, is left as it was. See test/helpers/cni.ts for the rig.
import { statSync } from 'node:fs'
import { dirname } from 'node:path'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { jsonLine, POD_ARGS, startRig, type Rig } from '../../helpers/cni.js'
import { initOk, kernelAvailable, POD, REMOTE, snapshot, withSandbox } from '../../helpers/kernel.js'
import { expectBypassed, expectCaptured } from '../../helpers/traffic.js'

const CAPTURED = { captureAll: true, settings: { ISTIO_PROXY_PORT: '15001' }, capabilities: { 'io.kubernetes.cri.pod-annotations': true } }
// Foreign rules in both families, in the chains ours hook into and beside them, as in the lifecycle suite. (clean
// leaves an empty built-in chain that init made: to iptables it is the same as none, but a snapshot would show it.)
const FOREIGN = [
  '-t nat -N FOREIGN',
  '-t nat -A OUTPUT -p tcp --dport 25 -j FOREIGN',
  '-t nat -A PREROUTING -p udp -j RETURN',
  '-t nat -A FOREIGN -j RETURN',
  '-t filter -A INPUT -p tcp --dport 22 -j ACCEPT',
].map(rule => rule.split(' '))

const addForeign = async (box: Sandbox): Promise<void> => {
  for (const args of FOREIGN) for (const tool of ['iptables-nft', 'ip6tables-nft']) await box.exec('pod', tool, args)
}

const ok = async (
  t: Test,
  rig: Rig,
  box: Sandbox,
  command: 'add' | 'check' | 'del',
  list: string,
  annotations?: Record<string, string>,
  options?: { netns?: string; args?: string },
) => {
  const result = await rig.runtime(box, command, list, annotations, options)
  t.equal(result.exitCode, 0, `${command} succeeds${options?.netns === '' ? ' without a netns' : ''}`, { output: result.output })
  return result.output
}

/** A node agent, and a sandbox whose pod already holds foreign rules. */
const setUp = async (t: Test): Promise<{ rig: Rig; box: Sandbox }> => {
  const rig = await startRig(t)
  const box = await withSandbox(t)
  await addForeign(box)
  return { rig, box }
}

/** The variables a runtime sets for ADD of the sandbox's pod. */
const podEnv = (box: Sandbox, container = 'c', ifname = 'eth0') => ({
  CNI_CONTAINERID: container,
  CNI_NETNS: `/run/netns/${box.podNs}`,
  CNI_IFNAME: ifname,
  CNI_ARGS: POD_ARGS,
})

const ours = async (box: Sandbox): Promise<string[]> =>
  (await box.exec('pod', 'iptables-nft-save', [])).stdout.split('\n').filter(l => /SIDECAR_|sidecar-redirect\//.test(l))

t.test(
  'ADD captures the pod: its traffic lands on the proxy both ways; CHECK passes; DEL removes ours, keeps foreign rules byte-identical, and may repeat',
  async t => {
    if (!kernelAvailable(t)) return
    const { rig, box } = await setUp(t)
    const before = await snapshot(box, 'netfilter')
    const list = rig.conflist(CAPTURED)
    const result = jsonLine(await ok(t, rig, box, 'add', list))
    t.match(result, { cniVersion: '1.0.0', ips: [{ address: /^198\.19\.7\.\d+\/24$/ }] }, "the bridge's result comes back through our plugin")
    t.match((await ours(box)).join('\n'), /REDIRECT --to-ports 15001/, 'the rules use the settings of the plugin config')
    await box.serve('pod', ['proxy=[::]:15001', 'app=[::]:8080'])
    await box.serve('remote', ['remote=[::]:9090'])
    await expectCaptured(t, box, { from: 'pod', host: REMOTE, port: 9090, as: { uid: 1000 } })
    await expectCaptured(t, box, { from: 'remote', host: POD, port: 8080 })
    await expectBypassed(t, box, { from: 'pod', host: REMOTE, port: 9090, as: { uid: 1337 } }, 'remote')
    await ok(t, rig, box, 'check', list)
    await ok(t, rig, box, 'del', list)
    t.equal(await snapshot(box, 'netfilter'), before, 'after DEL the ruleset is exactly what it was, foreign rules included')
    await ok(t, rig, box, 'del', list)
    await ok(t, rig, box, 'del', list, {}, { netns: '' })
    t.equal(await snapshot(box, 'netfilter'), before, 'repeated DELs change nothing')
  },
)

t.test('CHECK fails on drift: a foreign RETURN ahead of our jump, then a rule of ours deleted', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const rig = await startRig(t)
  const list = rig.conflist(CAPTURED)
  await ok(t, rig, box, 'add', list)
  await box.exec('pod', 'iptables-nft', ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-j', 'RETURN'])
  const ahead = await rig.runtime(box, 'check', list)
  t.not(ahead.exitCode, 0, 'CHECK fails with a foreign RETURN ahead of our jump')
  t.match(ahead.output, /exited 5 \(E_VERIFY\)[\s\S]*-A OUTPUT -p tcp -j RETURN/, 'and names the rule', { output: ahead.output })
  await box.exec('pod', 'iptables-nft', ['-t', 'nat', '-D', 'OUTPUT', '1'])
  await ok(t, rig, box, 'check', list)
  await box.exec('pod', 'iptables-nft', ['-t', 'nat', '-D', 'SIDECAR_OUTBOUND', '2'])
  const missing = await rig.runtime(box, 'check', list)
  t.not(missing.exitCode, 0, 'CHECK fails with a rule of ours deleted')
  t.match(missing.output, /- -A SIDECAR_OUTBOUND -p tcp -m owner --uid-owner 1337/, 'and names the missing rule', { output: missing.output })
  await ok(t, rig, box, 'del', list)
  t.same(await ours(box), [], 'DEL removes the rest of ours')
})

const NOT_CAPTURED = [
  {
    name: 'a pod in an excluded namespace (kube-system by default), even annotated',
    conf: CAPTURED,
    annotations: { 'sidecar-redirect.io/capture': 'enabled' },
    args: POD_ARGS.replace('=shop', '=kube-system'),
  },
  {
    name: 'a pod annotated capture: disabled, which the allow-list lets it say',
    conf: { ...CAPTURED, allowedAnnotations: ['capture'] },
    annotations: { 'sidecar-redirect.io/capture': 'disabled' },
    args: POD_ARGS,
  },
  { name: 'a pod not annotated while captureAll is false (the default)', conf: { settings: CAPTURED.settings }, annotations: {}, args: POD_ARGS },
]

t.test('a pod that is not captured is passed through untouched; CHECK then fails only if rules of ours appear', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  for (const row of NOT_CAPTURED) {
    await t.test(row.name, async t => {
      const box = await withSandbox(t)
      await addForeign(box)
      const before = await snapshot(box, 'netfilter')
      const list = rig.conflist(row.conf)
      await ok(t, rig, box, 'add', list, row.annotations, { args: row.args })
      t.equal(await snapshot(box, 'netfilter'), before, 'ADD changed no rule')
      await ok(t, rig, box, 'check', list, row.annotations, { args: row.args })
      await initOk(t, box, {})
      const check = await rig.runtime(box, 'check', list, row.annotations, { args: row.args })
      t.not(check.exitCode, 0, 'CHECK fails once rules of ours are in a pod that is not captured')
      t.match(check.output, /not captured .*but rules of ours are in its netns/, 'saying so', { output: check.output })
      await ok(t, rig, box, 'del', list, row.annotations, { args: row.args })
      t.equal(await snapshot(box, 'netfilter'), before, 'DEL removes them')
    })
  }
})

const REFUSED = [
  {
    name: 'a bad value in an allowed annotation',
    annotations: { 'sidecar-redirect.io/outbound-exclude-ports': '9090,x' },
    settings: {},
    allowed: ['outbound-exclude-ports'],
    names: /annotation sidecar-redirect\.io\/outbound-exclude-ports: ISTIO_OUTBOUND_EXCLUDE_PORTS="9090,x" is not valid/,
  },
  {
    name: 'an annotation naming no setting',
    annotations: { 'sidecar-redirect.io/proxy-prot': '1' },
    settings: {},
    names: /annotation sidecar-redirect\.io\/proxy-prot names no setting/,
  },
  {
    name: 'a capture annotation that is neither enabled nor disabled',
    annotations: { 'sidecar-redirect.io/capture': 'yes' },
    settings: {},
    names: /sidecar-redirect\.io\/capture="yes" is not valid: expected enabled or disabled/,
  },
  {
    name: 'a refused setting in the config',
    annotations: {},
    settings: { ISTIO_PROXY_PORT: '0' },
    names: /settings\.ISTIO_PROXY_PORT: ISTIO_PROXY_PORT="0" is not valid/,
  },
  {
    name: 'an unknown variable in the config',
    annotations: {},
    settings: { ISTIO_PROXY_PROT: '1' },
    names: /settings\.ISTIO_PROXY_PROT is not a setting/,
  },
]

t.test('a refused setting or annotation fails ADD with code 7 (invalid network config), naming it, and the netns is unchanged', async t => {
  if (!kernelAvailable(t)) return
  const { rig, box } = await setUp(t)
  const before = await snapshot(box, 'netfilter')
  for (const row of REFUSED) {
    await t.test(row.name, async t => {
      const allowedAnnotations = 'allowed' in row ? row.allowed : []
      const list = rig.conflist({ ...CAPTURED, allowedAnnotations, settings: { ...CAPTURED.settings, ...row.settings } })
      const add = await rig.runtime(box, 'add', list, row.annotations)
      t.not(add.exitCode, 0, 'ADD fails through libcni')
      t.match(add.output, row.names, 'naming the setting and its value', { output: add.output })
      t.equal(await snapshot(box, 'netfilter'), before, 'no rule changed')
      await ok(t, rig, box, 'del', list, row.annotations)
      const config = {
        cniVersion: '1.1.0',
        name: 'n',
        type: 'sidecar-redirect',
        agentSocket: rig.socket,
        ...CAPTURED,
        allowedAnnotations,
        settings: { ...CAPTURED.settings, ...row.settings },
        runtimeConfig: { 'io.kubernetes.cri.pod-annotations': row.annotations },
      }
      const direct = await rig.plugin('ADD', config, { env: podEnv(box) })
      t.equal(direct.exitCode, 1, 'the plugin exits non-zero')
      t.match(JSON.parse(direct.stdout), { cniVersion: '1.1.0', code: 7, msg: row.names }, "its stdout is the spec's error object")
    })
  }
})

t.test('a failed verify fails ADD with code 105 naming it, and the netns is left as it was', async t => {
  if (!kernelAvailable(t)) return
  const { rig, box } = await setUp(t)
  // A DNAT in the other iptables variant takes the app's connection before our REDIRECT can: init cannot fix that.
  await box.exec('pod', 'iptables-legacy', `-t nat -A OUTPUT -p tcp -d ${REMOTE} --dport 9090 -j DNAT --to-destination ${REMOTE}:9091`.split(' '))
  const before = await snapshot(box, 'netfilter')
  const list = rig.conflist(CAPTURED)
  const add = await rig.runtime(box, 'add', list)
  t.not(add.exitCode, 0, 'ADD fails through libcni')
  t.match(add.output, /init in the pod's netns exited 5 \(E_VERIFY\)[\s\S]*DNAT/, 'naming the verify failure and the rule', { output: add.output })
  t.equal(await snapshot(box, 'netfilter'), before, 'the netns is left as it was')
  const config = { cniVersion: '1.0.0', name: 'n', type: 'sidecar-redirect', agentSocket: rig.socket, ...CAPTURED }
  const direct = await rig.plugin('ADD', config, { env: podEnv(box) })
  t.match(
    { exitCode: direct.exitCode, ...JSON.parse(direct.stdout) },
    { exitCode: 1, cniVersion: '1.0.0', code: 105, msg: /E_VERIFY/ },
    "the spec's error object, code 100 + init's exit code",
  )
  await ok(t, rig, box, 'del', list)
})

t.test(
  'in a root with neither node nor iptables: VERSION, STATUS, GC, and ADD with prevResult passed through unchanged; without the agent STATUS is code 50 and ADD fails closed',
  async t => {
    if (!kernelAvailable(t)) return
    const rig = await startRig(t)
    const box = await withSandbox(t)
    const config = { cniVersion: '1.1.0', name: 'n', type: 'sidecar-redirect', agentSocket: '/run/agent.sock', ...CAPTURED }
    const pod = podEnv(box, 'c2', 'eth1')
    t.equal(statSync(rig.socket).mode & 0o777, 0o660, "the agent's socket is 0660")
    t.match(statSync(dirname(rig.socket)), { uid: 0, mode: 0o40755 }, 'in a root-owned 0755 directory')
    t.same(
      JSON.parse((await rig.plugin('VERSION', config, { chroot: true })).stdout),
      { cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] },
      'VERSION',
    )
    t.match(await rig.plugin('STATUS', config, { chroot: true }), { exitCode: 0, stdout: '' }, 'STATUS: available')
    t.match(
      JSON.parse((await rig.plugin('STATUS', { ...config, agentSocket: 'run/agent.sock' }, { chroot: true })).stdout),
      { code: 7, msg: /agentSocket must be an absolute path/ },
      'a relative agentSocket is code 7',
    )
    t.match(
      await rig.plugin('GC', config, { chroot: true }),
      { exitCode: 0, stdout: '', stderr: /nothing is kept outside/ },
      'GC succeeds and says nothing is kept',
    )
    const prevResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth1', sandbox: pod.CNI_NETNS, mac: '02:00:00:00:00:01' }],
      ips: [{ address: '198.19.8.5/24', gateway: '198.19.8.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: { nameservers: ['198.19.8.1'] },
    }
    const add = await rig.plugin('ADD', { ...config, prevResult }, { chroot: true, env: pod })
    t.equal(add.exitCode, 0, 'ADD succeeds', { add })
    t.same(JSON.parse(add.stdout), prevResult, 'prevResult comes back unchanged')
    const del = await rig.plugin('DEL', config, { chroot: true, env: pod })
    t.equal(del.exitCode, 0, 'DEL succeeds')
    t.same(await ours(box), [], 'and leaves nothing of ours')
    await rig.stopAgent()
    const status = await rig.plugin('STATUS', config, { chroot: true })
    t.equal(status.exitCode, 1, 'STATUS without the agent fails')
    t.match(JSON.parse(status.stdout), { cniVersion: '1.1.0', code: 50, msg: /node agent is not reachable/ }, 'with "plugin not available"')
    const closed = await rig.plugin('ADD', { ...config, prevResult }, { chroot: true, env: pod })
    t.equal(closed.exitCode, 1, 'ADD without the agent fails closed')
    t.match(JSON.parse(closed.stdout), { code: 11, msg: /failing closed/ }, 'and says so')
    t.match(
      await rig.plugin('DEL', config, { chroot: true, env: { ...pod, CNI_NETNS: '' } }),
      { exitCode: 0 },
      'DEL with no netns left succeeds without the agent',
    )
  },
)

t.test('ADDs for several pods at once each end captured and verified, as a runtime starting pods in parallel makes them', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const boxes = await Promise.all([1, 2, 3].map(() => withSandbox(t)))
  const list = rig.conflist(CAPTURED)
  const adds = await Promise.all(boxes.map(box => rig.runtime(box, 'add', list)))
  t.same(
    adds.map(a => a.exitCode),
    [0, 0, 0],
    'every ADD succeeds',
    { adds },
  )
  for (const box of boxes) await ok(t, rig, box, 'check', list)
  await Promise.all(boxes.map(box => ok(t, rig, box, 'del', list)))
  for (const box of boxes) t.same(await ours(box), [], `${box.podNs}: nothing of ours after DEL`)
})

t.test('VERSION through libcni', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const box = await withSandbox(t)
  const result = await rig.runtime(box, 'version', 'sidecar-redirect')
  t.equal(result.exitCode, 0, 'GetVersionInfo succeeds', { output: result.output })
  t.same(JSON.parse(result.output.trim()), ['1.0.0', '1.1.0'], 'and lists both versions')
})
