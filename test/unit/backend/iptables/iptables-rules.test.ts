// The iptables and nft backends' decisions through the recording fake: what they run, in which order, and what
// they do with each reply. No kernel, no root; the kernel suites prove the same on real rules.
import t from 'tap'
import { createIptablesRules } from '../../../../src/backend/iptables/iptables-rules.js'
import { createNftablesRules } from '../../../../src/backend/nftables/nftables.js'
import { buildPlan } from '../../../../src/plan/build.js'
import { EMPTY_STATE, renderState, renderTransaction } from '../../../../src/backend/iptables/render-iptables.js'
import { savedText } from '../../../helpers/saved.js'
import { renderNftTable } from '../../../../src/backend/nftables/render-nft.js'
import { parseSettings } from '../../../../src/settings/parse.js'
import { DEVICE_READS, fakeExec } from '../../../helpers/fake-exec.js'
import { NotInstalled } from '../../../../src/exec/exec.js'
import type { Written } from '../../../../src/backend/types.js'
import { driftOf } from '../../../../src/verify/drift.js'

// A kernel with x_tables (its table-name files exist, empty: no legacy tables) and every tool on PATH.
const fs = {
  readFile: async (path: string) => (path.endsWith('_tables_names') ? '' : undefined),
  readDir: async () => [],
  canOpenIpv6: async () => true,
  onPath: async () => true,
}
const plan = buildPlan(parseSettings({}), ['ipv4', 'ipv6'])
// What the last apply returned: its reads are the next read's to reuse, handed over as a value.
let written: Written
/** What iptables-save prints once our plan is applied in a namespace that held nothing else. */
const saved = (family: 0 | 1): string => savedText(renderState(plan.families[family]!))
/** What iptables-nft made in nf_tables for that, as nft lists it (the rules left out: only the chains matter here). */
const NAT_RULESET = ['ip', 'ip6']
  .map(
    f =>
      `table ${f} nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n\n\tchain OUTPUT {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n}\n`,
  )
  .join('')
/** What init makes before the first restore in a namespace without nat tables: each marked as ours. */
const MADE = ['ip', 'ip6']
  .flatMap(f => [
    `add table ${f} nat { comment "sidecar-redirect/created"; }`,
    `add chain ${f} nat PREROUTING { type nat hook prerouting priority -100; policy accept; comment "sidecar-redirect/created"; }`,
    `add chain ${f} nat OUTPUT { type nat hook output priority -100; policy accept; comment "sidecar-redirect/created"; }`,
  ])
  .join('\n')

t.test('fresh: read each family, make the nat tables marked as ours, one restore each, read back, and the ruleset once', async t => {
  const fake = fakeExec(t, [
    { run: 'iptables-nft-save', stdout: '' },
    { run: 'ip6tables-nft-save', stdout: '' },
    { run: 'nft -f -', input: `${MADE}\n` },
    { run: 'iptables-nft-restore --noflush -w 5', input: renderTransaction(renderState(plan.families[0]!), EMPTY_STATE) },
    { run: 'ip6tables-nft-restore --noflush -w 5', input: renderTransaction(renderState(plan.families[1]!), EMPTY_STATE) },
    { run: 'iptables-nft-save', stdout: saved(0) },
    { run: 'ip6tables-nft-save', stdout: saved(1) },
    { run: 'nft list ruleset', stdout: '' },
    ...DEVICE_READS,
  ])
  const backend = createIptablesRules(fake.exec, fs, 'nft')
  t.same(
    (written = await backend.apply(plan)).applied.map(a => a.changed),
    [true, true],
  )
  t.same(
    driftOf(plan, await backend.read(plan, written.known)).map(d => d.drift),
    [[], []],
    'read back exactly',
  )
  fake.done()
})

t.test('the ruleset is read beside the first reads: when it cannot be read, nothing is written', async t => {
  const fake = fakeExec(t, [
    { run: 'iptables-nft-save', stdout: '' },
    { run: 'ip6tables-nft-save', stdout: '' },
    { run: 'nft list ruleset', throws: () => new NotInstalled('nft') },
    ...DEVICE_READS,
  ])
  await t.rejects(createIptablesRules(fake.exec, fs, 'nft').apply(plan), {
    exitCode: 3,
    message: /the whole-path check reads native nftables rules with nft, which is not installed/,
  })
  t.notOk(
    fake.calls.some(c => c.includes('restore')),
    'no restore ran',
  )
  fake.done()
})

t.test('re-run over exact rules: one read per family and the ruleset, nothing written', async t => {
  const fake = fakeExec(t, [
    { run: 'iptables-nft-save', stdout: saved(0) },
    { run: 'ip6tables-nft-save', stdout: saved(1) },
    { run: 'nft list ruleset', stdout: '' },
    ...DEVICE_READS,
  ])
  const backend = createIptablesRules(fake.exec, fs, 'nft')
  t.same(
    (written = await backend.apply(plan)).applied.map(a => a.changed),
    [false, false],
  )
  t.same(
    driftOf(plan, await backend.read(plan, written.known)).map(d => d.drift),
    [[], []],
  )
  fake.done()
})

t.test('a foreign rule ahead of our jump: the jump is deleted and inserted first again, in one transaction', async t => {
  const ahead = saved(0).replace('-A OUTPUT -p tcp -m comment', '-A OUTPUT -d 198.18.0.2/32 -p tcp -j RETURN\n-A OUTPUT -p tcp -m comment')
  const fake = fakeExec(t, [
    { run: 'iptables-nft-save', stdout: ahead },
    { run: 'ip6tables-nft-save', stdout: saved(1) },
    { run: 'nft list ruleset', stdout: NAT_RULESET },
    ...DEVICE_READS,
    {
      run: 'iptables-nft-restore --noflush -w 5',
      input:
        /-D OUTPUT -p tcp -m comment --comment "sidecar-redirect\/outbound" -j SIDECAR_OUTBOUND\n-I OUTPUT 1 -p tcp -m comment --comment "sidecar-redirect\/outbound" -j SIDECAR_OUTBOUND\n/,
    },
  ])
  t.same(
    (await createIptablesRules(fake.exec, fs, 'nft').apply(plan)).applied.map(a => a.changed),
    [true, false],
    'only IPv4 is touched',
  )
  t.notMatch(fake.inputs.get('iptables-nft-restore --noflush -w 5')?.[0], /198\.18\.0\.2/, 'the foreign rule is not in the transaction')
  fake.done()
})

t.test('the whole path reads the other variant only where /proc lists its tables, and never creates one', async t => {
  const legacyFs = { ...fs, readFile: async (path: string) => (path === '/proc/net/ip_tables_names' ? 'nat\n' : undefined) }
  const fake = fakeExec(t, [
    { run: 'nft list ruleset', stdout: '' },
    ...DEVICE_READS,
    { run: 'iptables-nft-save', stdout: saved(0) },
    { run: 'ip6tables-nft-save', stdout: saved(1) },
    {
      run: 'iptables-legacy-save',
      stdout: '*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 198.18.0.2/32 -p tcp -j DNAT --to-destination 198.18.0.2:9\nCOMMIT\n',
    },
  ])
  const drift = driftOf(plan, await createIptablesRules(fake.exec, legacyFs, 'nft').read(plan))
  t.match(drift[0]?.drift.join('\n'), /iptables-legacy ipv4 nat OUTPUT rule 1: .*DNAT/)
  t.same(drift[1]?.drift, [], 'no ip6_tables_names: IPv6 legacy is not read')
  t.notOk(fake.calls.includes('ip6tables-legacy-save'))
  fake.done()
})

t.test('nft: a table with our name but not our comment is refused before anything is written', async t => {
  const fake = fakeExec(t, [{ run: 'nft list ruleset', stdout: 'table inet sidecar_redirect {\n\tchain c {\n\t}\n}\n' }, ...DEVICE_READS])
  await t.rejects(createNftablesRules(fake.exec, fs).apply(plan), { exitCode: 3, message: /has our name but is not ours/ })
  fake.done()
})

t.test('nft: unchanged, the read made by apply is the read-back', async t => {
  const table = renderNftTable(plan)
  const fake = fakeExec(t, [{ run: 'nft list ruleset', stdout: table }, ...DEVICE_READS])
  const backend = createNftablesRules(fake.exec, fs)
  t.same(
    (written = await backend.apply(plan)).applied.map(a => a.changed),
    [false],
  )
  t.same(
    driftOf(plan, await backend.read(plan, written.known)).map(d => d.drift),
    [[]],
  )
  fake.done()
})

t.test('nft: a changed table is changed in place, its base chains kept; an absent one is made whole', async t => {
  const before = renderNftTable(buildPlan(parseSettings({ ISTIO_PROXY_UID: '1000' }), ['ipv4', 'ipv6']))
  const fake = fakeExec(t, [
    { run: 'nft list ruleset', stdout: before },
    ...DEVICE_READS,
    { run: 'nft -f -', input: `flush table inet sidecar_redirect\n${renderNftTable(plan)}` },
  ])
  t.same(
    (await createNftablesRules(fake.exec, fs).apply(plan)).applied.map(a => a.changed),
    [true],
  )
  fake.done()
  const fresh = fakeExec(t, [
    { run: 'nft list ruleset', stdout: '' },
    ...DEVICE_READS,
    { run: 'nft -f -', input: /^table inet sidecar_redirect \{\}\ndelete table/ },
  ])
  await createNftablesRules(fresh.exec, fs).apply(plan)
  fresh.done()
})

t.test('the fake itself fails on an unexpected command and on one that never came', async t => {
  const inner = { fail: 0 }
  const probe = { ...t, fail: () => void inner.fail++ } as unknown as typeof t
  const fake = fakeExec(probe, [{ run: 'expected' }])
  await fake.exec('surprise', []).catch(() => undefined)
  fake.done()
  t.equal(inner.fail, 2)
})

t.test('detection: no legacy tables, no process; legacy tables under auto, both variants read once', async t => {
  const { probeHost } = await import('../../../../src/backend/detect.js')
  const quiet = fakeExec(t, [])
  const fresh = await probeHost('auto', 'false', quiet.exec, fs)
  t.equal(fresh.variant.value, 'nft')
  t.same(quiet.calls, [], 'reads /proc only')
  const legacyFs = { ...fs, readFile: async (path: string) => (path === '/proc/net/ip_tables_names' ? 'filter\n' : undefined) }
  const both = fakeExec(t, [
    { run: 'iptables-nft-save', stdout: '' },
    { run: 'iptables-legacy-save', stdout: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n' },
  ])
  const used = await probeHost('auto', 'false', both.exec, legacyFs)
  t.equal(used.variant.value, 'legacy')
  t.match(used.variant.reason, /uses iptables-legacy/)
  both.done()
  const chosen = fakeExec(t, [])
  t.equal((await probeHost('iptables-nft', 'false', chosen.exec, legacyFs)).variant.value, 'nft', 'a chosen backend reads nothing')
  t.same(chosen.calls, [])
})
