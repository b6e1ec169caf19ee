import t from 'tap'
import { chooseFamilies, chooseVariant, summarizeSave } from '../../src/backend/detect.js'
import { EnvironmentError } from '../../src/errors.js'

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
