import t from 'tap'
import { chooseFamilies, chooseVariant, probeHost, summarizeSave, type HostFs } from '../../../src/backend/detect.js'
import type { Exec } from '../../../src/exec/exec.js'
import { EnvironmentError } from '../../../src/errors.js'

t.test('the variant follows what the namespace already uses', async t => {
  const rows: [Parameters<typeof chooseVariant>[1], 'nft' | 'legacy', RegExp][] = [
    [{ legacyTables: [] }, 'nft', /no iptables-legacy tables/],
    [{ legacyTables: ['nat'], nft: { rules: 0, ours: false }, legacy: { rules: 3, ours: false } }, 'legacy', /uses iptables-legacy/],
    [{ legacyTables: ['nat'], nft: { rules: 5, ours: false }, legacy: { rules: 3, ours: false } }, 'nft', /5 nf_tables/],
    [{ legacyTables: ['nat'], nft: { rules: 9, ours: false }, legacy: { rules: 1, ours: true } }, 'legacy', /already in iptables-legacy/],
    [{ legacyTables: ['filter'], nft: { rules: 0, ours: false }, legacy: { rules: 0, ours: false } }, 'nft', /as many/],
  ]
  for (const [facts, variant, reason] of rows) {
    const d = chooseVariant('auto', facts)
    t.equal(d.value, variant)
    t.match(d.reason, reason)
  }
  t.same(chooseVariant('iptables-legacy', { legacyTables: [] }), { value: 'legacy', reason: 'set by ISTIO_BACKEND' })
})

t.test('IPv6 is on when any interface has it, not just the first', async t => {
  t.same(chooseFamilies('auto', { interfaces: { eth0: false, lo: false, eth1: true } }).value, ['ipv4', 'ipv6'])
  t.same(chooseFamilies('auto', { interfaces: { eth0: false, lo: false } }).value, ['ipv4'])
  t.same(chooseFamilies('auto', {}).value, ['ipv4'])
  t.same(chooseFamilies('false', { interfaces: { eth0: true } }).value, ['ipv4'])
  t.throws(() => chooseFamilies('true', { interfaces: { eth0: false } }), EnvironmentError)
  t.throws(() => chooseFamilies('true', {}), /kernel has no IPv6/)
})

t.test('a save summary counts rules and user chains and spots ours', async t => {
  t.same(summarizeSave('*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n-A X -j RETURN\nCOMMIT\n'), { rules: 2, ours: false })
  t.same(summarizeSave('*nat\n:SIDECAR_OUTBOUND - [0:0]\nCOMMIT\n'), { rules: 1, ours: true })
})

const hostFs = (files: Record<string, string | undefined>, programs: readonly string[], looked: string[] = []): HostFs => ({
  readFile: async path => files[path],
  readDir: async path => (path === '/proc/sys/net/ipv6/conf' ? ['lo', 'eth0'] : []),
  canOpenIpv6: async () => true,
  onPath: async program => {
    looked.push(program)
    return programs.includes(program)
  },
})
const X_TABLES = { '/proc/net/ip_tables_names': '', '/proc/net/ip6_tables_names': '', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6': '0\n' }
const IPTABLES_NFT = ['iptables-nft-save', 'iptables-nft-restore', 'ip6tables-nft-save', 'ip6tables-nft-restore']
const noExec: Exec = async file => {
  throw new Error(`no process may start: ${file}`)
}

t.test('auto on a node with working iptables: nf_tables, decided without a process', async t => {
  const looked: string[] = []
  const facts = await probeHost('auto', 'auto', noExec, hostFs(X_TABLES, [...IPTABLES_NFT, 'nft'], looked))
  t.equal(facts.variant.value, 'nft')
  t.same(looked.sort(), [...IPTABLES_NFT].sort(), 'only the programs iptables-nft needs are looked up')
})

t.test('auto on an nft-only node: native nftables, with the reason', async t => {
  const hidden = await probeHost('auto', 'auto', noExec, hostFs(X_TABLES, ['iptables-nft-save', 'iptables-nft-restore', 'nft']))
  t.same(hidden.variant, { value: 'nftables', reason: 'ip6tables-nft-save, ip6tables-nft-restore are not on PATH; native nftables needs neither' })
  const { '/proc/net/ip_tables_names': _, ...noV4 } = X_TABLES
  const kernel = await probeHost('auto', 'auto', noExec, hostFs(noV4, [...IPTABLES_NFT, 'nft']))
  t.equal(kernel.variant.value, 'nftables')
  t.match(kernel.variant.reason, 'the kernel has no x_tables, which iptables needs (/proc/net/ip_tables_names absent)')
  const v4only = await probeHost(
    'auto',
    'false',
    noExec,
    hostFs({ ...X_TABLES, '/proc/net/ip6_tables_names': undefined }, ['iptables-nft-save', 'iptables-nft-restore']),
  )
  t.equal(v4only.variant.value, 'nft', 'IPv6 left alone needs neither ip6tables nor ip6_tables')
})

t.test('neither working: exit 3 naming what is missing', async t => {
  const error = await probeHost('auto', 'auto', noExec, hostFs(X_TABLES, [])).catch((e: unknown) => e)
  t.type(error, EnvironmentError)
  t.equal((error as EnvironmentError).exitCode, 3)
  t.equal(
    (error as Error).message,
    'no backend can work here: iptables-nft-save, iptables-nft-restore, ip6tables-nft-save, ip6tables-nft-restore are not on PATH, and nft (the nftables package) is not on PATH either',
  )
})

t.test('a backend set explicitly, or legacy tables in use, is not second-guessed', async t => {
  const looked: string[] = []
  t.equal((await probeHost('iptables-nft', 'auto', noExec, hostFs(X_TABLES, [], looked))).variant.value, 'nft')
  const legacy = { ...X_TABLES, '/proc/net/ip_tables_names': 'nat\n' }
  const saves: Exec = async () => ({ stdout: '', stderr: '' })
  t.equal((await probeHost('auto', 'auto', saves, hostFs(legacy, [], looked))).variant.value, 'nft')
  t.same(looked, [], 'nothing looked up')
})
