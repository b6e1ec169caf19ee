// main's one job beyond dispatch: every failure becomes its exit code and one error report. Driven in process,
// through run() with the recording fake at the exec seam, so each error class is reached the way a user reaches it.
import t from 'tap'
import { EnvironmentError } from '../../src/errors.js'
import type { Io } from '../../src/io.js'
import { run } from '../../src/main.js'
import { DEVICE_READS, fakeExec, type Expected } from '../helpers/fake-exec.js'

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
      { run: 'nft list ruleset', stdout: '' },
      ...DEVICE_READS,
    ],
    code: 3,
    says: /iptables-nft-save is not installed.*\[E_ENVIRONMENT\]/,
  },
  {
    name: 'the kernel refusing the transaction',
    argv: ['init'],
    script: [
      { run: 'iptables-nft-save', stdout: '' },
      // The nat table made, marked ours, before the restore; read again after the refusal, to remove it.
      { run: 'nft -f -' },
      { run: 'iptables-nft-restore --noflush -w 5', fails: { stderr: 'iptables-restore: line 4 failed\n', line: 4 } },
      { run: 'nft list ruleset', stdout: '', times: 2 },
      ...DEVICE_READS,
    ],
    code: 4,
    says: /ipv4: the kernel refused the transaction at line 4 \(.*\): iptables-restore: line 4 failed \[E_APPLY\]/,
  },
  {
    name: 'rules that read back otherwise',
    argv: ['init'],
    script: [
      { run: 'iptables-nft-save', stdout: '', times: 2 },
      { run: 'nft -f -' },
      { run: 'iptables-nft-restore --noflush -w 5' },
      { run: 'nft list ruleset', stdout: '' },
      ...DEVICE_READS,
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
      { run: 'nft list ruleset', stdout: '', times: 2 },
      ...DEVICE_READS,
      { run: 'nft -f -' },
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
