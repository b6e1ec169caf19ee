// CNI mode as a tenant who can only create pods would try it, through libcni and the real agent (see
// test/helpers/cni.ts): each annotation that would weaken capture is refused by default and, once the operator's
// allow-list names it, really lets the app's traffic past the proxy (judged by connections); operator-only
// annotations are refused without the path being read; neither a planted secret file nor the agent's environment
// appears in any answer; an oversized annotation is refused at ADD while DEL still frees its address; resolv-conf
// DNS capture takes the runtime's nameservers (a real query through dnsmasq) or is refused; and a live probe of the
// cgroup method leaves no net_cls group behind.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { groupName } from '../../../src/cgroup/net-cls.js'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { jsonLine, POD_ARGS, type Rig, startRig } from '../../helpers/cni.js'
import { kernelAvailable, REMOTE, REMOTE6, snapshot, withSandbox } from '../../helpers/kernel.js'
import { dnsClient, proxyDnsArgs, startRemoteDns } from '../../helpers/dns.js'
import { withNetCls } from '../../helpers/netcls.js'
import { expectBypassed, expectCaptured } from '../../helpers/traffic.js'

const CAPABILITIES = { 'io.kubernetes.cri.pod-annotations': true, dns: true }
const BASE = { captureAll: true, settings: { ISTIO_PROXY_PORT: '15001' }, capabilities: CAPABILITIES }

/**
 * A /24 of its own for each list (each list is a bridge of its own in the node namespace, and two with one subnet
 * would take each other's replies), with one address for the pod, whatever ran before: a row names it before ADD.
 */
const net = (n: number) => {
  const prefix = `198.19.${n}`
  return { pod: `${prefix}.9`, gateway: `${prefix}.1`, ranges: [[{ subnet: `${prefix}.0/24`, rangeStart: `${prefix}.9`, rangeEnd: `${prefix}.9` }]] }
}
const RANGES = net(7).ranges

type Runtime = Parameters<Rig['runtime']>
const run = (rig: Rig, box: Sandbox, command: Runtime[1], list: string, annotations: Record<string, string> = {}, options: Runtime[4] = {}) =>
  rig.runtime(box, command, list, annotations, options)

const ok = async (
  t: Test,
  rig: Rig,
  box: Sandbox,
  command: Runtime[1],
  list: string,
  annotations: Record<string, string> = {},
  options: Runtime[4] = {},
) => {
  const result = await run(rig, box, command, list, annotations, options)
  t.equal(result.exitCode, 0, `${command} succeeds`, { output: result.output })
  return result.output
}

/** A refusal through libcni: libcni prints the plugin's error object's message; the code is checked on the plugin's own stdout. */
const refused = async (
  t: Test,
  rig: Rig,
  box: Sandbox,
  list: string,
  annotations: Record<string, string>,
  names: RegExp,
  options: Runtime[4] = {},
) => {
  const result = await run(rig, box, 'add', list, annotations, options)
  t.not(result.exitCode, 0, 'ADD is refused', { output: result.output })
  t.match(result.output, names, 'naming why', { output: result.output })
  return result.output
}

/** Runs the plugin alone for ADD, as a runtime does, and returns its error object. */
const direct = async (rig: Rig, box: Sandbox, ours: Record<string, unknown>, annotations: Record<string, string>) => {
  const config = {
    cniVersion: '1.1.0',
    name: 'n',
    type: 'sidecar-redirect',
    agentSocket: rig.socket,
    ...ours,
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': annotations },
  }
  const env = { CNI_CONTAINERID: 'd', CNI_NETNS: `/run/netns/${box.podNs}`, CNI_IFNAME: 'eth9', CNI_ARGS: POD_ARGS }
  const result = await rig.plugin('ADD', config, { env })
  return { ...result, error: jsonLine(result.stdout) }
}

type Path = Parameters<typeof expectCaptured>[2]

// Each annotation a tenant would use to get past the proxy, and the connection that shows it did: out of eth0 to the
// bridge's address in the node namespace, or from there into the pod.
const ESCAPES: { flag: string; value: (pod: string) => string; path: (n: ReturnType<typeof net>) => Path; label: string }[] = [
  { flag: 'exclude-interfaces', value: () => 'eth0', path: n => ({ from: 'pod', host: n.gateway, port: 9090, as: { uid: 1000 } }), label: 'remote' },
  {
    flag: 'outbound-include-cidrs',
    value: pod => `${pod}/32`,
    path: n => ({ from: 'pod', host: n.gateway, port: 9090, as: { uid: 1000 } }),
    label: 'remote',
  },
  { flag: 'proxy-uid', value: () => '1000', path: n => ({ from: 'pod', host: n.gateway, port: 9090, as: { uid: 1000 } }), label: 'remote' },
  {
    flag: 'outbound-exclude-ports',
    value: () => '80,443',
    path: n => ({ from: 'pod', host: n.gateway, port: 80, as: { uid: 1000 } }),
    label: 'remote',
  },
  { flag: 'inbound-ports', value: () => '', path: n => ({ from: 'remote', host: n.pod, port: 8080 }), label: 'app' },
]

t.test('each weakening annotation is refused (7) by default, and lets traffic past the proxy only once the allow-list names it', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const box = await withSandbox(t)
  await box.serve('pod', ['proxy=[::]:15001', 'app=[::]:8080'])
  await box.serve('remote', ['remote=[::]:9090', 'remote=[::]:80'])
  const strictNet = net(7)
  const strict = rig.conflist(BASE, strictNet.ranges)
  await ok(t, rig, box, 'add', strict)
  for (const row of ESCAPES) await expectCaptured(t, box, row.path(strictNet))
  await ok(t, rig, box, 'del', strict)
  const before = await snapshot(box, 'netfilter')
  for (const [i, row] of ESCAPES.entries()) {
    await t.test(`${row.flag}`, async t => {
      const key = `sidecar-redirect.io/${row.flag}`
      const refusedValue = { [key]: row.value(strictNet.pod) }
      await refused(t, rig, box, strict, refusedValue, new RegExp(`annotation ${key} is refused: the operator's allowedAnnotations does not name`))
      t.equal(await snapshot(box, 'netfilter'), before, 'no rule was written')
      t.match((await direct(rig, box, BASE, refusedValue)).error, { code: 7 }, "the plugin's error object is code 7")
      await ok(t, rig, box, 'del', strict, refusedValue)
      const own = net(20 + i)
      const value = { [key]: row.value(own.pod) }
      const allowing = rig.conflist({ ...BASE, allowedAnnotations: [row.flag] }, own.ranges)
      await ok(t, rig, box, 'add', allowing, value)
      await expectBypassed(t, box, row.path(own), row.label)
      await ok(t, rig, box, 'del', allowing, value)
      t.equal(await snapshot(box, 'netfilter'), before, 'DEL leaves nothing of ours')
    })
  }
})

const SECRET = `SECRET-${process.pid}-c4f1`
const MARKER = `AGENT-ENV-${process.pid}-9d2e`

// Every setting that names a node path or decides how the agent runs.
const OPERATOR_ONLY = [
  ...['services-file', 'resolv-conf', 'dns-servers', 'backend', 'exec-timeout', 'verify', 'log-format', 'strict-env'],
  // And what widens what capture lets past: an excluded interface's whole reach, BPF programs taken unjudged.
  ...['exclude-interfaces-scope', 'accept-bpf-programs'],
]

t.test('operator-only annotations are refused naming the key, without the path being read; no secret or agent env in any answer', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t, { env: { SR_TEST_MARKER: MARKER } })
  const box = await withSandbox(t)
  const dir = t.testdir()
  const secret = `${dir}/secret`
  writeFileSync(secret, `${SECRET}\n`, { mode: 0o600 })
  // relatime updates the access time of a file read while it is older than its change: a read would move it.
  const old = new Date('2001-01-01T00:00:00Z')
  utimesSync(secret, old, statSync(secret).mtime)
  const list = rig.conflist(BASE, RANGES)
  const answers: string[] = []
  for (const flag of OPERATOR_ONLY) {
    const key = `sidecar-redirect.io/${flag}`
    const value = flag === 'services-file' || flag === 'resolv-conf' ? secret : flag === 'dns-servers' ? REMOTE : '1'
    answers.push(
      await refused(t, rig, box, list, { [key]: value }, new RegExp(`annotation ${key} is refused: ISTIO_\\w+ names a node path or decides how`)),
    )
    const alone = await direct(rig, box, BASE, { [key]: value })
    t.match(alone.error, { code: 7 }, `${key}: code 7`)
    answers.push(alone.stdout, alone.stderr)
    for (const command of ['check', 'del'] as const) answers.push((await run(rig, box, command, list, { [key]: value })).output)
  }
  t.equal(statSync(secret).atime.getTime(), old.getTime(), 'the planted file was never read')
  t.match(
    (await direct(rig, box, { ...BASE, allowedAnnotations: ['services-file'] }, {})).error,
    { code: 7, msg: /allowedAnnotations names services-file, which only the operator's settings may set/ },
    'an allow-list cannot open them to pods',
  )
  // The operator's own setting naming a file the runtime's caller may not read: a secret, the agent's environment,
  // nothing, a directory, a big file. Each answer is the same words: no content, no existence, no size.
  mkdirSync(`${dir}/adir`)
  writeFileSync(`${dir}/big`, `${'#'.repeat(70 * 1024 * 1024)}\n`)
  const fileAnswers = new Set<string>()
  for (const path of [secret, '/proc/self/environ', `${dir}/missing`, `${dir}/adir`, `${dir}/big`]) {
    const settings = { ...BASE.settings, ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES_FILE: path }
    const withFile = rig.conflist({ ...BASE, settings }, RANGES)
    const answer = await refused(
      t,
      rig,
      box,
      withFile,
      {},
      /settings.ISTIO_SERVICES_FILE: the file it names was refused \(the node agent's log says why\)/,
    )
    const alone = await direct(rig, box, { ...BASE, settings }, {})
    fileAnswers.add(alone.stdout)
    t.match(alone.error, { code: 7, details: '' }, `${path}: code 7, no details`)
    answers.push(answer, alone.stdout, alone.stderr)
    await ok(t, rig, box, 'del', withFile)
  }
  t.equal(fileAnswers.size, 1, 'the answer is the same for a secret, the environment, a missing path, a directory and a big file')
  const all = answers.join('\n')
  for (const [what, needle] of [
    ['the secret', SECRET],
    ["the agent's environment", MARKER],
    ['a size', String(70 * 1024 * 1024 + 1)],
    ['an errno', 'ENOENT'],
  ] as const)
    t.notOk(all.includes(needle), `no answer holds ${what}`)
  t.ok(rig.agentLog().includes(SECRET), "the node agent's own log says what was wrong")
})

t.test('an oversized annotation: ADD is refused with 7, DEL succeeds, and no address of the range is leaked', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const box = await withSandbox(t)
  // host-local hands out .2 to .6 of a /29 (the bridge's gateway takes .1): five addresses.
  const list = rig.conflist({ ...BASE, allowedAnnotations: ['outbound-exclude-ports'] }, [[{ subnet: '198.19.9.0/29' }]])
  const huge = { 'sidecar-redirect.io/outbound-exclude-ports': `80,${'9'.repeat(146 * 1024)}` }
  for (let i = 1; i <= 6; i++) {
    const output = await refused(t, rig, box, list, huge, /sidecar-redirect.io\/outbound-exclude-ports is \d+ bytes, over the 32768-byte limit/, {
      id: `big-${i}`,
    })
    t.ok(output.length < 2000, 'the answer does not carry the value')
    await ok(t, rig, box, 'del', list, huge, { id: `big-${i}` })
  }
  t.match((await direct(rig, box, { ...BASE, allowedAnnotations: ['outbound-exclude-ports'] }, huge)).error, { code: 7 }, 'code 7')
  const ipam = `${rig.dir}/ipam/${(JSON.parse(readFileSync(list, 'utf8')) as { name: string }).name}`
  t.same(
    readdirSync(ipam).filter(name => /^\d+\.\d+\.\d+\.\d+$/.test(name)),
    [],
    'every address the refused ADDs took is free again',
  )
  const normal = jsonLine(await ok(t, rig, box, 'add', list, { 'other.example/huge': 'y'.repeat(146 * 1024) }, { id: 'normal' }))
  t.match(normal, { ips: [{ address: /^198\.19\.9\.[2-6]\/29$/ }] }, 'the next pod gets an address (a large annotation not ours is ignored)')
  await ok(t, rig, box, 'del', list, {}, { id: 'normal' })
})

t.test("resolv-conf DNS capture takes the runtime's dns.servers (a real query through dnsmasq); without them ADD is refused", async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const box = await withSandbox(t)
  const list = rig.conflist({ ...BASE, settings: { ...BASE.settings, ISTIO_DNS_CAPTURE: 'resolv-conf' } }, net(10).ranges)
  await refused(t, rig, box, list, {}, /ISTIO_DNS_CAPTURE=resolv-conf needs the nameservers the runtime passes in runtimeConfig.dns.servers/)
  await ok(t, rig, box, 'del', list)
  await startRemoteDns(box)
  const dns = { dns: { servers: [REMOTE, REMOTE6], searches: ['svc.cluster.local'], options: ['ndots:5'] } }
  await ok(t, rig, box, 'add', list, {}, { capabilities: dns })
  // Started once ADD is done: the loopback plugin's DEL (after the refused ADD) took lo down, ::1 with it.
  // The proxy's DNS server: UID 1337, on the DNS port, forwarding what it does not know to the nameservers.
  const pod = box.start('pod', 'setpriv', proxyDnsArgs(15053, [`--server=${REMOTE}`]))
  await pod.waitForLine(line => line.includes('started'))
  const query = async (args: string[]) => {
    const result = await box.tryExec('pod', 'setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, dnsClient(), ...args])
    return jsonLine(result.output) ?? { output: result.output }
  }
  for (const [ns, type, answer] of [
    [REMOTE, 'A', '198.18.7.7'],
    [REMOTE6, 'AAAA', '2001:db8::7:7'],
  ] as const) {
    for (const protocol of ['udp', 'tcp'])
      t.match(
        await query([protocol, ns, 'pod.test', type]),
        { ok: true, answers: [answer], from: { address: ns, port: 53 } },
        `${protocol} ${ns}: the app's query is answered by the proxy's DNS server, from ${ns}:53`,
      )
  }
  t.match(
    await query(['udp', REMOTE, 'remote.test', 'A']),
    { ok: true, answers: ['198.18.5.5'], from: { address: REMOTE, port: 53 } },
    "the proxy's own forwarded query goes out to the nameserver",
  )
  await ok(t, rig, box, 'del', list, {}, { capabilities: dns })
})

t.test('the cgroup method with a live probe: ADD verifies, and no net_cls group is left on the node', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const box = await withSandbox(t)
  // The net_cls hierarchy is one for the whole machine, however often it is mounted: a classid of this run's own.
  const classid = 0xee0000 + (process.pid & 0xffff)
  const root = await withNetCls(t, box, classid)
  const group = `${root}/${groupName(classid)}`
  t.notOk(existsSync(group), 'no group before')
  const settings = { ...BASE.settings, ISTIO_OUTBOUND_METHOD: 'cgroup', ISTIO_NET_CLS_ID: String(classid), ISTIO_VERIFY: 'live' }
  const list = rig.conflist({ ...BASE, settings }, net(11).ranges)
  await ok(t, rig, box, 'add', list)
  t.match(rig.agentLog(), /ADD \S+ \S+: exit 0/, 'ADD ran the live probe and passed')
  t.notOk(existsSync(group), 'the group the probe made for its bypass check is gone again')
  await ok(t, rig, box, 'del', list)
})
