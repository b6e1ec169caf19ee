// Legacy's list of tables, where this process may not read it: detection, the whole-path check and the legacy
// backend's reads go on without it, and none of them names a table it does not write (naming one makes it).
import t from 'tap'
import { probeHost, type HostFs } from '../../../src/backend/detect.js'
import { createIptablesBackend } from '../../../src/backend/iptables/iptables.js'
import { legacyNamesOnce, readLegacyNames } from '../../../src/backend/legacy-names.js'
import { readElsewhere } from '../../../src/backend/whole-path.js'
import { EnvironmentError } from '../../../src/errors.js'
import type { Exec } from '../../../src/exec/exec.js'
import { fakeExec } from '../../helpers/fake-exec.js'

const NAMES = ['/proc/net/ip_tables_names', '/proc/net/ip6_tables_names']
const IPTABLES_NFT = ['iptables-nft-save', 'iptables-nft-restore', 'ip6tables-nft-save', 'ip6tables-nft-restore']

// What realFs throws for a file it may not read (io.ts): an EnvironmentError caused by the errno.
const refused = (path: string, code: string): EnvironmentError =>
  new EnvironmentError(`cannot read ${path}: permission denied`, { cause: Object.assign(new Error(code), { code }) })

const hostFs = (denied: Record<string, string>, programs: readonly string[], looked: string[] = []): HostFs => ({
  readFile: async path => {
    if (denied[path] !== undefined) throw refused(path, denied[path])
    return path.endsWith('disable_ipv6') ? '0\n' : ''
  },
  readDir: async path => (path === '/proc/sys/net/ipv6/conf' ? ['lo', 'eth0'] : []),
  canOpenIpv6: async () => true,
  onPath: async program => {
    looked.push(program)
    return programs.includes(program)
  },
})
const DENIED = Object.fromEntries(NAMES.map(p => [p, 'EACCES']))
const noExec: Exec = async file => {
  throw new Error(`no process may start: ${file}`)
}

t.test('a refusal is a value; absence and other failures are what they were', async t => {
  t.same(await readLegacyNames(hostFs(DENIED, []), 'ipv4'), { unreadable: '/proc/net/ip_tables_names is not readable by this process (EACCES)' })
  t.same(await readLegacyNames(hostFs({ [NAMES[1]!]: 'EPERM' }, []), 'ipv6'), {
    unreadable: '/proc/net/ip6_tables_names is not readable by this process (EPERM)',
  })
  t.same(await readLegacyNames({ readFile: async () => 'nat\nfilter\n' }, 'ipv4'), ['nat', 'filter'])
  t.equal(await readLegacyNames({ readFile: async () => undefined }, 'ipv4'), undefined)
  await t.rejects(readLegacyNames(hostFs({ [NAMES[0]!]: 'EIO' }, []), 'ipv4'), /cannot read/, 'an I/O error is not taken for a refusal')
})

t.test('auto with unlistable legacy tables: nf_tables, decided without a process, and says why', async t => {
  const looked: string[] = []
  const facts = await probeHost('auto', 'auto', noExec, hostFs(DENIED, [...IPTABLES_NFT, 'nft'], looked))
  t.equal(facts.variant.value, 'nft')
  t.match(facts.variant.reason, /iptables-legacy tables cannot be listed \(\/proc\/net\/ip_tables_names is not readable by this process \(EACCES\)/)
  t.match(facts.variant.reason, /naming one would create it; nf_tables is the default/)
  t.same(looked.sort(), [...IPTABLES_NFT].sort(), 'an unreadable list still proves x_tables is there')
  const nftOnly = await probeHost('auto', 'auto', noExec, hostFs(DENIED, ['nft']))
  t.equal(nftOnly.variant.value, 'nftables', 'without iptables-nft, native nftables as before')
  t.equal((await probeHost('iptables-legacy', 'auto', noExec, hostFs(DENIED, []))).variant.value, 'legacy', 'a set backend stands')
})

t.test('the whole-path check does not name legacy tables it cannot list', async t => {
  const fake = fakeExec(t, [{ run: 'nft list ruleset', stdout: '' }])
  const found = await readElsewhere(fake.exec, legacyNamesOnce(hostFs(DENIED, [])), ['ipv4', 'ipv6'], 'nft', undefined, [])
  t.same([...found.iptables.values()], [[], []])
  t.same(fake.calls, ['nft list ruleset'], 'no iptables-legacy-save at all')
  fake.done()
})

t.test("legacy's reads, where its list is unreadable, name only the tables the plan writes", async t => {
  const saved = (table: string): string => `*${table}\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n`
  const fake = fakeExec(t, [
    { run: 'iptables-legacy-save -t nat', stdout: saved('nat') },
    { run: 'iptables-legacy-save -t mangle', stdout: saved('mangle') },
  ])
  const legacy = createIptablesBackend(fake.exec, 'legacy', {}, legacyNamesOnce(hostFs(DENIED, [])))
  t.equal(await legacy.save('ipv4', ['nat', 'mangle']), saved('nat') + saved('mangle'))
  fake.done()
  const readable = fakeExec(t, [{ run: 'iptables-legacy-save', stdout: saved('nat') }])
  t.equal(
    await createIptablesBackend(readable.exec, 'legacy', {}, legacyNamesOnce(hostFs({}, []))).save('ipv4', ['nat']),
    saved('nat'),
    'listable: the whole save, as always',
  )
  const nft = fakeExec(t, [{ run: 'iptables-nft-save', stdout: '' }])
  await createIptablesBackend(nft.exec, 'nft', {}, legacyNamesOnce(hostFs(DENIED, []))).save('ipv4', ['nat'])
  t.same(nft.calls, ['iptables-nft-save'], 'iptables-nft makes no table by reading: the whole save')
})

t.test('a non-root legacy run reads the lists once: detection, apply, the read-back and clean take the value it passed along', async t => {
  const reads: string[] = []
  const counted: HostFs = {
    ...hostFs(DENIED, []),
    readFile: async path => {
      if (NAMES.includes(path)) reads.push(path)
      return hostFs(DENIED, []).readFile(path)
    },
  }
  const { createIptablesRules } = await import('../../../src/backend/iptables/iptables-rules.js')
  const { parseSettings } = await import('../../../src/settings/parse.js')
  // Every tool answers with nothing: a namespace holding no rules, whose writes all succeed.
  const quiet: Exec = async () => ({ stdout: '', stderr: '' })
  const { prepare } = await import('../../../src/commands/prepare.js')
  const io = {
    exec: quiet,
    fs: counted,
    lock: async () => async () => undefined,
    now: () => 0,
    startedAt: 0,
    out: { write: () => undefined, error: () => undefined },
  }
  const { backend, plan } = await prepare(parseSettings({ ISTIO_BACKEND: 'iptables-legacy' }), io)
  t.same(reads.sort(), [...NAMES].sort(), 'detection reads each list once')
  const { known } = await backend.apply(plan)
  await backend.read(plan, known)
  await backend.read(plan)
  await backend.clean(plan)
  t.equal(reads.length, 2, 'and nothing after it reads them again')
  reads.length = 0
  const alone = createIptablesRules(quiet, counted, 'legacy')
  const { buildPlan } = await import('../../../src/plan/build.js')
  await alone.apply(buildPlan(parseSettings({}), ['ipv4', 'ipv6']))
  await alone.read(buildPlan(parseSettings({}), ['ipv4', 'ipv6']))
  t.same(reads.sort(), [...NAMES].sort(), 'a backend made without detection reads each once, on first need')
})
