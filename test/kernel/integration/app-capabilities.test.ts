// What a captured app must not have, shown with traffic on every backend: with CAP_NET_RAW (in containerd's and
// Docker's default set) an app writes a TCP SYN to a packet socket and it reaches the remote past every rule, while
// its ordinary connection to the same place is captured; without it, the packet socket is refused. And validate,
// run as the app's identity, reports its own capability sets and says when NET_RAW or NET_ADMIN is within reach.
import t from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { initOk, kernelAvailable, POD, programs, REMOTE, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectCaptured } from '../../helpers/traffic.js'

const APP = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups']
const NO_CAPS = [...APP, '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs']
const WITH_NET_RAW = [...APP, '--inh-caps=+net_raw', '--ambient-caps=+net_raw']

/** The veth ends of the sandbox (see createSandbox): `sr<id>p` in the pod, `sr<id>r` in the remote. */
const links = (box: Sandbox) => {
  const id = box.podNs.replace(/^sr-(\w+)-pod$/, '$1')
  return { pod: `sr${id}p`, remote: `sr${id}r` }
}

/** SYNs to port 9090 that reached the remote, counted before its own rules. */
const synsAtRemote = async (box: Sandbox): Promise<number> => {
  const listed = (await box.exec('remote', 'nft', ['list', 'table', 'ip', 'count'])).stdout
  return Number(/counter packets (\d+)/.exec(listed)?.[1] ?? -1)
}

const rawSyn = async (box: Sandbox, as: readonly string[]): Promise<{ ok: boolean; error?: string }> => {
  const mac = (JSON.parse((await box.exec('remote', 'ip', ['-j', 'link', 'show', 'dev', links(box).remote])).stdout) as { address: string }[])[0]!
    .address
  const result = await box.tryExec('pod', as[0]!, [
    ...as.slice(1),
    process.execPath,
    programs().peer,
    'raw-syn',
    links(box).pod,
    mac,
    POD,
    REMOTE,
    '9090',
  ])
  return JSON.parse(result.output.split('\n').find(l => l.startsWith('{')) ?? '{"ok":false}') as { ok: boolean; error?: string }
}

for (const backend of BACKENDS) {
  t.test(`${backend}: an app with NET_RAW sends TCP past every rule; without it, it cannot`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.serve('pod', ['proxy=[::]:5001'])
    await box.serve('remote', ['remote=[::]:9090'])
    await box.exec(
      'remote',
      'nft',
      ['-f', '-'],
      'table ip count {\n  chain c { type filter hook prerouting priority -400; tcp dport 9090 tcp flags syn counter; }\n}\n',
    )
    await initOk(t, box, { ISTIO_BACKEND: backend })
    await expectCaptured(t, box, { from: 'pod', host: REMOTE, port: 9090, as: { uid: 1000 } })
    t.equal(await synsAtRemote(box), 0, 'the ordinary connection never left the pod: the proxy took it')
    t.match(await rawSyn(box, NO_CAPS), { ok: false, error: /socket\(AF_PACKET\) failed: errno 1 \(it needs CAP_NET_RAW\)/ }, 'no NET_RAW: refused')
    t.equal(await synsAtRemote(box), 0)
    t.same(await rawSyn(box, WITH_NET_RAW), { ok: true }, 'with NET_RAW (uid 1000, nothing else) the SYN is sent')
    t.equal(await synsAtRemote(box), 1, 'and it reached the remote, past our capture')
    await initOk(t, box, { ISTIO_BACKEND: backend }, ['verify'])
  })
}

t.test('validate reports its own capability sets, and what they put within reach', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  await initOk(t, box, {})
  const validate = (as: readonly string[]) => box.tryExec('pod', as[0]!, [...as.slice(1), process.execPath, programs().cli, 'validate'])
  const clean = await validate(NO_CAPS)
  t.equal(clean.exitCode, 0, { output: clean.output })
  t.match(clean.output, /capabilities\s+effective none, permitted none, ambient none, bounding none$/m)
  t.notMatch(clean.output, /NET_RAW|NET_ADMIN/, 'nothing to warn about')
  const raw = await validate(WITH_NET_RAW)
  t.equal(raw.exitCode, 0, 'capture is still in place: exit 0', { output: raw.output })
  t.match(raw.output, /effective net_raw, permitted net_raw, ambient net_raw/)
  t.match(raw.output, /NET_RAW held: its packet sockets send TCP that no rule sees; a captured app must not have it/)
  const bounded = await validate(APP)
  t.match(bounded.output, /NET_RAW in the bounding set: a program with file capabilities could get it/, { output: bounded.output })
  t.match(bounded.output, /NET_ADMIN in the bounding set/)
})
