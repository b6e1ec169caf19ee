// init through the exec seam: every process it starts is recorded. The commands are forwarded into a sandbox
// namespace with nsenter, so the kernel is real and only the counting is added.
import t, { type Test } from 'tap'
import { realExec, type Exec } from '../../../src/exec/exec.js'
import { runInit } from '../../../src/commands/init.js'
import { ApplyError, EnvironmentError } from '../../../src/errors.js'
import type { Io } from '../../../src/io.js'
import { createLogger } from '../../../src/log.js'
import { parseSettings } from '../../../src/settings/parse.js'
import { kernelAvailable, withSandbox } from '../../helpers/kernel.js'

interface Call {
  readonly file: string
  readonly args: readonly string[]
  readonly input: string | undefined
}

const ioFor = (exec: Exec, printed: string[]): Io => ({
  exec,
  fs: {
    readFile: async path => (path.endsWith('disable_ipv6') ? '0\n' : path.endsWith('_tables_names') ? '' : undefined),
    canOpenIpv6: async () => true,
    onPath: async () => true,
    readDir: async path => (path === '/proc/sys/net/ipv6/conf' ? ['all', 'default', 'lo', 'eth0'] : []),
  },
  lock: async () => async () => undefined,
  startedAt: performance.now(),
  now: () => performance.now(),
  out: { write: text => void printed.push(text), error: text => void printed.push(text) },
})

/** A sandbox whose pod namespace runs every command of the seam, each recorded in `calls`. */
const recordingSandbox = async (t: Test): Promise<{ calls: Call[]; exec: Exec }> => {
  const box = await withSandbox(t)
  const calls: Call[] = []
  const exec: Exec = (file, args, input) => {
    calls.push({ file, args, input })
    return realExec('nsenter', [`--net=/run/netns/${box.podNs}`, file, ...args], input)
  }
  return { calls, exec }
}

t.test(
  'init starts at most 3 processes per family plus the ruleset read, the tables it makes and two device reads, and 1 per family plus the reads when nothing changes',
  async t => {
    if (!kernelAvailable(t)) return
    const { calls, exec } = await recordingSandbox(t)
    const printed: string[] = []
    const settings = parseSettings({ ISTIO_VERIFY: 'rules' })
    await runInit(settings, ioFor(exec, printed), createLogger('text', { write: s => void printed.push(s), error: s => void printed.push(s) }))
    // Families run side by side, so only the order within a family is fixed: read, apply, read back.
    const ofFamily = (prefix: string): string[] => calls.filter(c => c.file.startsWith(prefix)).map(c => c.file.slice(prefix.length))
    t.same(ofFamily('iptables-nft-'), ['save', 'restore', 'save'])
    t.same(ofFamily('ip6tables-nft-'), ['save', 'restore', 'save'])
    t.same(
      calls.filter(c => c.file === 'nft').map(c => c.args),
      [
        ['list', 'ruleset'],
        ['-f', '-'],
      ],
      'the whole-path check reads the native ruleset once, for both families; one transaction makes the nat tables, marked ours, before the restores',
    )
    t.same(
      calls
        .filter(c => c.file === 'ip' || c.file === 'tc')
        .map(c => [c.file, ...c.args].join(' '))
        .sort(),
      ['ip -j link show', 'tc -j qdisc show'],
      "the whole-path check reads the devices' XDP programs and qdiscs once (no filters where there is no qdisc to hold them)",
    )
    t.equal(calls.length, 10, 'nothing else is started')
    const restore = calls.find(c => c.file === 'iptables-nft-restore')
    t.same(restore?.args, ['--noflush', '-w', '5'], 'one --noflush transaction, rules on stdin')
    t.match(restore?.input, /^\*nat\n[\s\S]*COMMIT\n$/)
    calls.length = 0
    await runInit(settings, ioFor(exec, printed), createLogger('text', { write: () => undefined, error: () => undefined }))
    t.same([ofFamily('iptables-nft-'), ofFamily('ip6tables-nft-')], [['save'], ['save']], 'a re-run reads each family once, under the lock')
    t.equal(calls.length, 5, 'and the ruleset and the devices once')
  },
)

t.test('a refused transaction becomes an ApplyError naming the family, the line and its text', async t => {
  const payloads: string[] = []
  const exec: Exec = async (file, _args, input) => {
    if (file.endsWith('-save') || file === 'nft' || file === 'ip' || file === 'tc') return { stdout: '', stderr: '' }
    payloads.push(input ?? '')
    const { CommandFailed } = await import('../../../src/exec/exec.js')
    throw new CommandFailed(file, 'iptables-restore: line 6 failed\n', 6)
  }
  const settings = parseSettings({ ISTIO_VERIFY: 'rules', ISTIO_IPV6: 'false' })
  const error = await t.rejects(
    runInit(settings, ioFor(exec, []), createLogger('text', { write: () => undefined, error: () => undefined })),
    ApplyError,
  )
  t.match(String((error as unknown as Error).message), /ipv4: the kernel refused the transaction at line 6 \(-A SIDECAR_INBOUND /)
})

t.test('a missing iptables binary is an environment error, not a crash', async t => {
  const error = await realExec('iptables-does-not-exist-save', []).catch((e: unknown) => e)
  t.type(error, EnvironmentError)
  // Not installed; or, for a user who may not search a directory on PATH (a non-root run), not runnable.
  t.match(String((error as Error).message), /is not installed|cannot be run by this user \(EACCES\)/)
})

t.test('stderr that merely mentions a permission word is not a permission error', async t => {
  const error = await realExec('sh', ['-c', 'echo "rule comment: Permission denied lookalike" >&2; exit 2']).catch((e: unknown) => e)
  t.notOk(error instanceof EnvironmentError, 'exit 2 with the word in it is a plain failure')
  const denied = await realExec('sh', [
    '-c',
    'echo "Could not fetch rule set generation id: Permission denied (you must be root)" >&2; exit 4',
  ]).catch((e: unknown) => e)
  t.type(denied, EnvironmentError)
})

t.test('native nftables: the ruleset, one transaction and the read-back fresh; one read when nothing changes', async t => {
  if (!kernelAvailable(t)) return
  const { calls, exec } = await recordingSandbox(t)
  const settings = parseSettings({ ISTIO_VERIFY: 'rules', ISTIO_BACKEND: 'nftables' })
  const quiet = createLogger('text', { write: () => undefined, error: () => undefined })
  await runInit(settings, ioFor(exec, []), quiet)
  const nft = (): string[] => calls.filter(c => c.file === 'nft').map(c => `${c.file} ${c.args.join(' ')}`)
  const devices = (): string[] => calls.filter(c => c.file !== 'nft').map(c => `${c.file} ${c.args.join(' ')}`)
  t.same(nft(), ['nft list ruleset', 'nft -f -', 'nft list ruleset'])
  t.same(devices().sort(), ['ip -j link show', 'tc -j qdisc show'], 'and the devices once, beside the first read')
  calls.length = 0
  await runInit(settings, ioFor(exec, []), quiet)
  t.same(nft(), ['nft list ruleset'], 'a re-run reads once, under the lock')
  t.same(devices().sort(), ['ip -j link show', 'tc -j qdisc show'], 'and the devices once')
})
