// main's one job beyond dispatch: every failure becomes its exit code and one error report. Driven in process,
// through run() with the recording fake at the exec seam, so each error class is reached the way a user reaches it.
import t from 'tap'
import { EnvironmentError } from '../src/errors.js'
import type { Io } from '../src/io.js'
import { run } from '../src/main.js'
import { startHeadStart } from '../src/backend/head-start.js'
import { fakeExec, type Expected } from './helpers/fake-exec.js'

const ioWith = (exec: Io['exec'], captured: { out: string; err: string }): Io => ({
  exec,
  // A kernel with x_tables (its table-name files exist, empty) and every tool on PATH.
  fs: {
    readFile: async path => (path.endsWith('_tables_names') ? '' : undefined),
    readDir: async path => (path === '/proc/sys/net/ipv6/conf' ? [] : []),
    canOpenIpv6: async () => false,
    onPath: async () => true,
  },
  lock: async () => async () => undefined,
  now: () => performance.now(),
  startedAt: 0,
  out: { write: text => void (captured.out += text), error: text => void (captured.err += text) },
})

const ROWS: { name: string; argv: string[]; env?: Record<string, string>; script: Expected[]; code: number; says: RegExp }[] = [
  { name: '--help', argv: ['--help'], script: [], code: 0, says: /entrypoint \[command\] \[flags\]/ },
  { name: 'plan', argv: ['plan'], script: [], code: 0, says: /# ipv4: iptables-restore --noflush\n\*nat\n/ },
  {
    name: 'a refused setting',
    argv: ['init'],
    env: { ISTIO_PROXY_PORT: '0' },
    script: [],
    code: 2,
    says: /ISTIO_PROXY_PORT="0" is not valid.*\[E_CONFIG\]/,
  },
  {
    name: 'a tool that is not there',
    argv: ['init'],
    script: [
      { run: 'iptables-nft-save', throws: () => new EnvironmentError('iptables-nft-save is not installed (the image needs the iptables package)') },
    ],
    code: 3,
    says: /iptables-nft-save is not installed.*\[E_ENVIRONMENT\]/,
  },
  {
    name: 'the kernel refusing the transaction',
    argv: ['init'],
    script: [
      { run: 'iptables-nft-save', stdout: '' },
      { run: 'iptables-nft-restore --noflush -w 5', fails: { stderr: 'iptables-restore: line 4 failed\n', line: 4 } },
    ],
    code: 4,
    says: /ipv4: the kernel refused the transaction at line 4 \(.*\): iptables-restore: line 4 failed \[E_APPLY\]/,
  },
  {
    name: 'rules that read back otherwise',
    argv: ['init'],
    script: [
      { run: 'iptables-nft-save', stdout: '', times: 2 },
      { run: 'iptables-nft-restore --noflush -w 5' },
      { run: 'nft list ruleset', stdout: '' },
    ],
    code: 5,
    says: /the rules read back differ from the plan.*\[E_VERIFY\]\n {2}ipv4:\n {4}jumps from built-in chains:\n {4}- -A OUTPUT .*-j SIDECAR_OUTBOUND/,
  },
  {
    name: 'a missing extension',
    argv: ['init'],
    env: { ISTIO_OUTBOUND_METHOD: 'cgroup' },
    script: [
      { run: 'iptables-nft-save', stdout: '' },
      {
        run: 'iptables-nft-restore --noflush -w 5',
        fails: { stderr: "iptables-restore v1.8.9 (nf_tables): Couldn't load match `cgroup':No such file or directory\n" },
      },
    ],
    code: 3,
    says: /the "cgroup" extension is missing.*\[E_ENVIRONMENT\]/,
  },
]

for (const row of ROWS) {
  t.test(`${row.name}: exit ${row.code}`, async t => {
    const fake = fakeExec(t, row.script)
    const captured = { out: '', err: '' }
    const code = await run(row.argv, { ISTIO_VERIFY: 'rules', ISTIO_IPV6: 'false', ...row.env }, ioWith(fake.exec, captured))
    t.equal(code, row.code, 'exit code', { captured })
    t.match(`${captured.out}${captured.err}`, row.says)
    fake.done()
  })
}

t.test('an unexpected failure is a bug: exit 1 with the stack, never a silent success', async t => {
  const captured = { out: '', err: '' }
  const code = await run(
    ['init'],
    { ISTIO_VERIFY: 'rules', ISTIO_IPV6: 'false' },
    ioWith(async () => Promise.reject(new TypeError('boom')), captured),
  )
  t.equal(code, 1)
  t.match(captured.err, /unexpected failure \(a bug; please report it\):\nTypeError: boom/)
})

t.test('init takes over the head start: its lock (asked for once, released at the end) and its reads, none twice', async t => {
  const captured = { out: '', err: '' }
  const env = { ISTIO_VERIFY: 'rules', ISTIO_IPV6: 'false', ISTIO_LOG_FORMAT: 'json' }
  const fake = fakeExec(t, [
    { run: 'iptables-nft-save', stdout: '', times: 2 },
    { run: 'iptables-nft-restore --noflush -w 5' },
    { run: 'nft list ruleset', stdout: '' },
  ])
  let locks = 0
  let released = 0
  const lock = async () => {
    locks++
    return async () => void released++
  }
  const io = ioWith(fake.exec, captured)
  const headStart = startHeadStart(env, fake.exec, io.fs, lock)!
  // The read-back then differs (the fake's second save prints nothing): enough to see who read what.
  const code = await run(['init'], env, { ...io, lock: async () => t.fail('init asks for the lock itself') as never, headStart })
  t.equal(code, 5)
  t.same(fake.calls.slice(0, 2), ['iptables-nft-save', 'iptables-nft-restore --noflush -w 5'], 'the first read is the head start’s')
  t.same([locks, released], [1, 1])
  fake.done()
})

t.test('a head start made for other settings is let go of, and init does its own', async t => {
  const captured = { out: '', err: '' }
  const fake = fakeExec(t, [])
  let released = 0
  const io = ioWith(fake.exec, captured)
  const headStart = startHeadStart({ ISTIO_BACKEND: 'nftables' }, fake.exec, io.fs, async () => async () => void released++)!
  let ownLock = 0
  const code = await run(['plan'], { ISTIO_BACKEND: 'nftables' }, { ...io, headStart })
  t.equal(code, 0, 'other commands never look at it')
  const init = await run(
    ['init', '--backend', 'iptables-nft'],
    { ISTIO_IPV6: 'false', ISTIO_VERIFY: 'rules' },
    {
      ...ioWith(
        fakeExec(t, [
          { run: 'iptables-nft-save', stdout: '', times: 2 },
          { run: 'iptables-nft-restore --noflush -w 5' },
          { run: 'nft list ruleset', stdout: '' },
        ]).exec,
        captured,
      ),
      lock: async () => {
        ownLock++
        return async () => undefined
      },
      headStart,
    },
  )
  t.equal(init, 5)
  t.same([released, ownLock], [1, 1], 'its lock released, then init takes its own')
})
