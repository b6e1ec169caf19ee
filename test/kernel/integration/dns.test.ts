// DNS capture decided by traffic on every backend and in both families, with real DNS servers: dnsmasq as the
// proxy's DNS server (the proxy UID, on the DNS port, in the pod) and dnsmasq in the remote namespace as the
// nameserver the pod's resolv.conf names. An app's UDP and TCP queries to that nameserver are answered by the
// pod's server, the answer's source is the nameserver's address, and the pod server's own forwarded query reaches
// the remote one, also when it uses the source port an earlier app query to the same nameserver used (the case
// conntrack zones exist for). Then verify, a refused apply that puts raw back too, and clean.
import { writeFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { initOk, kernelAvailable, POD, POD6, REMOTE, REMOTE6, refusedThenClean, snapshot, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS } from '../../helpers/rows.js'
import { dnsClient, proxyDnsArgs, startRemoteDns } from '../../helpers/dns.js'

const UDP = new URL('../../fixtures/udp.mjs', import.meta.url).pathname
// The pod server sends its forwarded queries from this port, and an app query uses it first: the same 5-tuple.
const SHARED_PORT = 40053
const FAMILIES = [
  { pod: POD, ns: REMOTE, type: 'A', remoteAnswer: '198.18.5.5' },
  { pod: POD6, ns: REMOTE6, type: 'AAAA', remoteAnswer: '2001:db8::5:5' },
] as const

interface Answer {
  readonly ok: boolean
  readonly from?: { address: string; port: number }
  readonly rcode?: number
  readonly answers?: string[]
  readonly error?: string
}

const query = async (box: Sandbox, args: string[]): Promise<Answer> => {
  const result = await box.tryExec('pod', process.execPath, [dnsClient(), ...args])
  const line = result.output.split('\n').find(l => l.startsWith('{'))
  return line ? (JSON.parse(line) as Answer) : { ok: false, error: result.output }
}

/** The proxy's DNS server: the proxy UID, loopback only, forwarding to the remote nameserver from SHARED_PORT. */
const startPodServer = async (box: Sandbox, port: number): Promise<void> => {
  const server = box.start('pod', 'setpriv', proxyDnsArgs(port, [`--query-port=${SHARED_PORT}`, `--server=${REMOTE}`, `--server=${REMOTE6}`]))
  await server.waitForLine(line => line.includes('cleared cache') || line.includes('started'))
}

const expectAnswer = async (t: Test, box: Sandbox, args: string[], answer: string, from: string, what: string): Promise<void> => {
  const got = await query(box, args)
  t.same(
    { ok: got.ok, rcode: got.rcode, answers: got.answers, from: got.from },
    { ok: true, rcode: 0, answers: [answer], from: { address: from, port: 53 } },
    what,
    {
      got,
    },
  )
}

for (const backend of BACKENDS) {
  t.test(`${backend}: DNS to the resolv.conf nameservers reaches the proxy's DNS server, and its own queries go out`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const resolv = `${t.testdir()}/resolv.conf`
    writeFileSync(resolv, `search svc.cluster.local\nnameserver ${REMOTE}\nnameserver ${REMOTE6}\noptions ndots:5\n`)
    // Foreign rules in every nat and raw table, so the tables exist before as after (clean cannot un-create one).
    for (const tool of ['iptables-nft', 'ip6tables-nft', 'iptables-legacy', 'ip6tables-legacy']) {
      for (const table of ['nat', 'raw']) {
        for (const chain of ['PREROUTING', 'OUTPUT']) await box.exec('pod', tool, ['-t', table, '-A', chain, '-p', 'sctp', '-j', 'RETURN'])
      }
    }
    const before = await snapshot(box)
    await startRemoteDns(box)
    const env = { ISTIO_BACKEND: backend, ISTIO_DNS_CAPTURE: 'resolv-conf', ISTIO_RESOLV_CONF: resolv }
    await initOk(t, box, env)
    // An app query from SHARED_PORT while no DNS server listens yet: it leaves its conntrack entry, NATed to the
    // DNS port, for the pod server's forwarded query to collide with.
    for (const { pod, ns, type } of FAMILIES)
      t.match(await query(box, ['udp-once', ns, 'first.test', type, pod, String(SHARED_PORT)]), { sent: true })
    await startPodServer(box, 15053)
    for (const { ns, type, remoteAnswer } of FAMILIES) {
      await expectAnswer(
        t,
        box,
        ['udp', ns, 'pod.test', type],
        type === 'A' ? '198.18.7.7' : '2001:db8::7:7',
        ns,
        `UDP ${ns}: answered by the pod's server, from ${ns}:53`,
      )
      await expectAnswer(
        t,
        box,
        ['tcp', ns, 'pod.test', type],
        type === 'A' ? '198.18.7.7' : '2001:db8::7:7',
        ns,
        `TCP ${ns}: answered by the pod's server`,
      )
      await expectAnswer(
        t,
        box,
        ['udp', ns, 'remote.test', type],
        remoteAnswer,
        ns,
        `UDP ${ns}: the pod server's forwarded query, from the app's old source port, reached ${ns}`,
      )
      await expectAnswer(t, box, ['tcp', ns, 'remote.test', type], remoteAnswer, ns, `TCP ${ns}: forwarded to and answered by ${ns}`)
    }
    await initOk(t, box, env, ['verify'])
    if (backend !== 'nftables') {
      // A foreign rule put ahead of our jumps: init moves them back first, the DNS jump still ahead of the capture.
      const tool = backend
      await box.exec('pod', tool, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-j', 'ACCEPT'])
      await initOk(t, box, env)
      const output = (await box.exec('pod', `${tool}-save`, ['-t', 'nat'])).stdout.split('\n').filter(l => l.startsWith('-A OUTPUT'))
      t.same(
        output.slice(0, 3).map(l => l.replace(/ -m comment --comment "[^"]*"/, '')),
        ['-A OUTPUT -j SIDECAR_DNS', '-A OUTPUT -p tcp -j SIDECAR_OUTBOUND', '-A OUTPUT -p tcp -j ACCEPT'],
        'our jumps first again, in their order; the foreign rule kept',
      )
      await box.exec('pod', tool, ['-t', 'nat', '-D', 'OUTPUT', '-p', 'tcp', '-j', 'ACCEPT'])
      await expectAnswer(t, box, ['tcp', REMOTE, 'pod.test', 'A'], '198.18.7.7', REMOTE, 'TCP DNS still reaches the DNS port')
    }
    // A refused apply (another DNS port) puts back what was there, raw rules included, in both families.
    await refusedThenClean(t, box, backend, env, { ISTIO_DNS_PORT: '15054' }, before)
  })
}

t.test('all: DNS to any address is answered by the pod server, from the address the app asked', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await initOk(t, box, { ISTIO_DNS_CAPTURE: 'all', ISTIO_DNS_PORT: '15054' })
  await startPodServer(box, 15054)
  for (const [ns, type, answer] of [
    ['198.18.0.99', 'A', '198.18.7.7'],
    ['2001:db8::99', 'AAAA', '2001:db8::7:7'],
  ] as const) {
    await expectAnswer(t, box, ['udp', ns, 'pod.test', type], answer, ns, `UDP to ${ns}, which no host has`)
  }
})

// The app's own UDP service, asked by a client whose source port is 53: the app's reply goes to port 53 like a
// query would, but it belongs to the client's connection and must reach the client, not the proxy's DNS server.
for (const backend of BACKENDS) {
  t.test(`${backend}: with DNS capture all, the reply of the app's own UDP service to a client on port 53 reaches it`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const env = { ISTIO_BACKEND: backend, ISTIO_DNS_CAPTURE: 'all' }
    await initOk(t, box, env)
    await startPodServer(box, 15053)
    const app = box.start('pod', process.execPath, [UDP, 'serve', '7053', 'app'])
    await app.waitForLine(line => line.includes('"ready"'))
    for (const pod of [POD, POD6]) {
      const result = await box.tryExec('remote', process.execPath, [UDP, 'ask', pod, '7053', '53'])
      const got = JSON.parse(result.output.split('\n').find(l => l.startsWith('{')) ?? '{}') as { answer?: string; from?: unknown }
      t.same({ answer: got.answer, from: got.from }, { answer: 'app hello', from: { address: pod, port: 7053 } }, `client ${pod}:53 -> app`, {
        got,
      })
    }
    // And the app's own query still reaches the proxy's DNS server.
    await expectAnswer(t, box, ['udp', REMOTE, 'pod.test', 'A'], '198.18.7.7', REMOTE, 'an app query is still captured')
  })
}

t.test('resolv-conf with a missing or empty file is refused, naming the variable and the file, nothing changed', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const before = await snapshot(box)
  const empty = `${t.testdir()}/resolv.conf`
  writeFileSync(empty, 'search x\n')
  for (const [path, why] of [
    ['/nonexistent/resolv.conf', /cannot be opened: ENOENT/],
    [empty, /it has none/],
  ] as const) {
    const result = await box.runInit({ ISTIO_DNS_CAPTURE: 'resolv-conf', ISTIO_RESOLV_CONF: path })
    t.equal(result.exitCode, 2, `${path}: exit 2`, { output: result.output })
    t.match(result.output, new RegExp(`ISTIO_RESOLV_CONF=${JSON.stringify(path).replace(/[/.]/g, '\\$&')} is not valid`))
    t.match(result.output, why)
  }
  t.equal(await snapshot(box), before)
})

t.test(
  'the live probe checks DNS in both families: passed, failed when a foreign rule takes DNS first, not checked while the port is taken',
  async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const resolv = `${t.testdir()}/resolv.conf`
    writeFileSync(resolv, `nameserver ${REMOTE}\nnameserver ${REMOTE6}\n`)
    const env = { ISTIO_DNS_CAPTURE: 'resolv-conf', ISTIO_RESOLV_CONF: resolv, ISTIO_VERIFY: 'live' }
    const report = await initOk(t, box, env)
    for (const ns of [REMOTE, `[${REMOTE6}]`]) {
      t.match(report, `dns: passed, uid 0 (an app identity) -> ${ns}:53 (UDP) reached the DNS port 15053, answered from ${ns}:53`)
      t.match(report, `dns-tcp: passed, uid 0 (an app identity) -> ${ns}:53 (TCP) reached the DNS port 15053 (SO_ORIGINAL_DST ${ns}:53)`)
    }
    // A nat chain ahead of ours binds UDP DNS elsewhere: no rule the whole-path check reads as touching TCP, so only
    // the live DNS check sees it.
    const foreign =
      'table inet foreign {\n\tchain early {\n\t\ttype nat hook output priority -150; policy accept;\n\t\tudp dport 53 meta nfproto ipv4 dnat ip to 198.18.0.3\n\t\tudp dport 53 meta nfproto ipv6 dnat ip6 to 2001:db8::3\n\t}\n}\n'
    await box.exec('pod', 'nft', ['-f', '-'], foreign)
    const broken = await box.runInit(env, ['verify'])
    t.equal(broken.exitCode, 5, 'verify fails', { output: broken.output })
    t.match(broken.output, /ipv4 dns: failed, uid 0 \(an app identity\) -> 198\.18\.0\.2:53 \(UDP\) the query never reached the DNS port 15053/)
    t.match(broken.output, /ipv6 dns: failed/)
    t.match(broken.output, /ipv4 dns-tcp: passed/, 'TCP is still captured')
    await box.exec('pod', 'nft', ['delete', 'table', 'inet', 'foreign'])
    await startPodServer(box, 15053)
    const busy = await initOk(t, box, env, ['verify'])
    t.match(busy, /ipv4 dns: not checked, UDP port 15053 is in use \(is the proxy's DNS server already running\?\)/)
    t.match(busy, /ipv6 dns-tcp: not checked, TCP port 15053 is in use/)
  },
)
