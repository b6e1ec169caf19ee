// The node classifier: a proxy container with no root, no capability and no cgroupfs still gets the cgroup
// method, because the classifier moves the agent (found by SO_PEERCRED) into the group.
import { chmodSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import type { Started } from '../../../src/exec/processes.js'
import { classidOf, groupName } from '../../../src/cgroup/net-cls.js'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { readStatus } from '../../../src/privilege/status.js'
import { initOk, kernelAvailable, POD, programs, REMOTE, START_MS, withSandbox } from '../../helpers/kernel.js'
import { withNetCls } from '../../helpers/netcls.js'
import { inCgroup, withCgroups } from '../../helpers/cgroup2.js'

const CLASSID = 0x100001
const UNPRIVILEGED = (uid: number): string[] => [
  `--reuid=${uid}`,
  `--regid=${uid}`,
  `--groups=${uid}`,
  '--inh-caps=-all',
  '--bounding-set=-all',
  '--no-new-privs',
]

interface Outcome {
  readonly ok?: boolean
  readonly error?: string
  readonly path?: string | null
  readonly reply?: string | { label: string }
  readonly pid?: number
}

const peerAs = async (box: Sandbox, uid: number, args: string[], cgroup?: string): Promise<Outcome[]> => {
  const argv = ['setpriv', ...UNPRIVILEGED(uid), process.execPath, programs().peer, ...args]
  const [file, rest] = cgroup === undefined ? [argv[0]!, argv.slice(1)] : inCgroup(cgroup, argv)
  const result = await box.tryExec('pod', file, rest)
  return result.output
    .split('\n')
    .filter(l => l.startsWith('{'))
    .map(l => JSON.parse(l) as Outcome)
}

const setUp = async (t: Test): Promise<{ box: Sandbox; socket: string; classifier: Started; hierarchy: string }> => {
  const box = await withSandbox(t)
  const hierarchy = await withNetCls(t, box, CLASSID)
  const dir = mkdtempSync(`${tmpdir()}/sr-classifier-`)
  chmodSync(dir, 0o755)
  const socket = `${dir}/run/classifier.sock`
  const classifier = box.start('pod', process.execPath, [
    programs().cli,
    'classifier',
    '--classifier-socket',
    socket,
    '--allowed-uids',
    '1337,1338',
    '--net-cls-root',
    hierarchy,
    '--log-format',
    'json',
  ])
  await classifier.waitForLine(l => l.includes('"listening"'), START_MS)
  return { box, socket, classifier, hierarchy }
}

t.test('an agent as UID 1337 with no capabilities and no cgroupfs runs a classified proxy, across a restart', async t => {
  if (!kernelAvailable(t)) return
  const { box, socket, classifier, hierarchy } = await setUp(t)
  await initOk(t, box, { ISTIO_OUTBOUND_METHOD: 'cgroup' })
  await box.serve('remote', ['remote=[::]:9090'])
  await box.serve('pod', ['app=[::]:8080'])
  const cannotWrite = await box.tryExec('pod', 'setpriv', [
    ...UNPRIVILEGED(1337),
    'sh',
    '-c',
    `echo $$ > ${hierarchy}/${groupName(CLASSID)}/cgroup.procs`,
  ])
  t.not(cannotWrite.exitCode, 0, 'UID 1337 cannot write to the cgroupfs')
  const { cli, peer } = programs()
  const agent = box.start(
    'pod',
    'setpriv',
    [...UNPRIVILEGED(1337), process.execPath, cli, 'run', '--restart', 'on-failure', '--', process.execPath, peer, 'proxy', '5001'],
    {
      ISTIO_OUTBOUND_METHOD: 'cgroup',
      ISTIO_CLASSIFIER_SOCKET: socket,
      ISTIO_NET_CLS_ROOT: hierarchy,
    },
  )
  const ready = (n: number) => agent.waitForLine(() => agent.lines.filter(l => l.includes('"ready"')).length > n, START_MS)
  for (const start of [0, 1]) {
    await ready(start)
    const pid = (JSON.parse(agent.lines.filter(l => l.includes('"ready"'))[start]!) as { pid: number }).pid
    const status = readStatus(pid)
    t.same([status.uids[0], status.capEff, status.capPrm, status.capBnd], [1337, 0n, 0n, 0n], `proxy start ${start + 1}: UID 1337, no capabilities`)
    t.equal(await classidOf(pid, hierarchy), CLASSID, `proxy start ${start + 1}: classified`)
    for (const [from, host, port, label] of [
      ['pod', REMOTE, 9090, 'remote'],
      ['remote', POD, 8080, 'app'],
    ] as const) {
      const reply = await box.connect(from, host, port)
      t.equal(reply.reply?.label, label, `${from} -> ${host}:${port} relayed without a loop`)
    }
    if (start === 0) process.kill(pid, 'SIGKILL')
  }
  t.ok(
    classifier.lines.some(l => l.includes(`"pid":${agent.pid}`) && l.includes('"outcome":"moved"')),
    'the classifier moved the agent itself, by its kernel-attested PID',
  )
})

t.test('the classifier refuses other UIDs, other classids and bad messages, and keeps serving', async t => {
  if (!kernelAvailable(t)) return
  const { box, socket, classifier, hierarchy } = await setUp(t)
  const root = ['--net-cls-root', hierarchy]
  await initOk(t, box, { ISTIO_OUTBOUND_METHOD: 'cgroup' })
  await box.serve('pod', ['proxy=[::]:5001'])
  await box.serve('remote', ['remote=[::]:9090'])
  const [refused, traffic] = await peerAs(box, 1000, ['classify', socket, String(CLASSID), '--connect', `${REMOTE}:9090`, ...root])
  t.match(refused, { ok: false, error: /UID 1000 is not an allowed proxy UID/ }, 'another UID is refused')
  t.notMatch(refused?.path ?? '', groupName(CLASSID), '... and not moved')
  t.match(traffic, { reply: { label: 'proxy' } }, '... and its traffic stays captured')
  const [otherClassid] = await peerAs(box, 1337, ['classify', socket, '42', ...root])
  t.match(otherClassid, { ok: false, error: /classid 0x2a is not allowed/ })
  const bad: [string, string[], RegExp][] = [
    ['garbage', ['hello\\n'], /not JSON/],
    ['a wrong shape', ['{"classid":"1048577"}\\n'], /non-zero 32-bit integer/],
    ['truncated', ['{"classid":1048577}'], /ended before its newline/],
    ['huge', ['x', '--repeat', '100000', '--keep-open'], /longer than 512 bytes/],
  ]
  for (const [what, args, message] of bad) {
    const [reply] = await peerAs(box, 1337, ['send', socket, ...args])
    t.match(JSON.parse(String(reply?.reply)), { ok: false, error: message }, `${what} gets an error reply`)
  }
  // Each in a cgroup of its own, as the agents of 20 pods are: one pod's are served a few at a time.
  const pods = Object.values(
    await withCgroups(
      t,
      box,
      Array.from({ length: 20 }, (_, i) => `pod-${i}`),
    ),
  )
  const clients = await Promise.all(pods.map(pod => peerAs(box, 1337, ['classify', socket, String(CLASSID), ...root], pod)))
  const served = clients.map(([c]) => c).filter(c => c?.ok === true && c.path?.endsWith(groupName(CLASSID)))
  t.equal(served.length, 20, '20 concurrent clients of 20 pods are each moved into the group', { clients })
  t.equal(new Set(served.map(c => c!.pid)).size, 20, '... each one itself')
  t.equal(classifier.lines.filter(l => l.includes('"outcome":"refused"')).length, 6, 'every refusal is logged')
})

t.test('an unreachable classifier stops the agent with its own exit code', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const { cli, peer } = programs()
  const agent = box.start('pod', 'setpriv', [...UNPRIVILEGED(1337), process.execPath, cli, 'run', '--', process.execPath, peer, 'proxy', '5001'], {
    ISTIO_OUTBOUND_METHOD: 'cgroup',
    ISTIO_CLASSIFIER_SOCKET: '/nonexistent/classifier.sock',
  })
  t.equal(await agent.exited, 7)
  t.match(agent.lines.join('\n'), /classifier at \/nonexistent\/classifier.sock is unreachable/)
  t.notOk(
    agent.lines.some(l => l.includes('proxy started')),
    'no proxy was started',
  )
})
