import t from 'tap'
import { buildPlan } from '../../../../src/plan/build.js'
import { chainOf } from '../../../../src/plan/parts.js'
import type { FamilyPlan, Rule } from '../../../../src/plan/types.js'
import { compareState } from '../../../../src/backend/compare.js'
import { savedText } from '../../../helpers/saved.js'
import { renderNftTable } from '../../../../src/backend/nftables/render-nft.js'
import { EMPTY_STATE, renderState, renderTransaction, type OwnedState, type TableState } from '../../../../src/backend/iptables/render-iptables.js'
import { parseSettings } from '../../../../src/settings/parse.js'
import { ownedState, parseOurTables } from '../../../../src/backend/iptables/parse-save.js'

const plan = renderState(buildPlan(parseSettings({}), ['ipv4']).families[0]!)
const desired = plan.get('nat')!
const nat = (state: TableState): OwnedState => new Map([['nat', state]])
const jumpIn = desired.jumps.find(j => j.startsWith('-A PREROUTING'))!
const jumpOut = desired.jumps.find(j => j.startsWith('-A OUTPUT'))!

t.test('into an empty table: declare chains, insert both jumps first, fill', async t => {
  const text = renderTransaction(plan, EMPTY_STATE)
  t.match(text, /^\*nat\n:SIDECAR_INBOUND - \[0:0\]\n:SIDECAR_OUTBOUND - \[0:0\]\n/)
  t.equal(text.match(/^-I (PREROUTING|OUTPUT) 1 /gm)?.length, 2)
  t.notMatch(text, /^-D /m)
  t.match(text, /COMMIT\n$/)
})

t.test('over itself: jumps kept, no insert or delete, chains refilled in the same transaction', async t => {
  const text = renderTransaction(plan, plan)
  t.notMatch(text, /^-[ID] /m)
  t.equal(text.match(/^-A SIDECAR_/gm)?.length, 4)
})

t.test('duplicate jumps left by a race are deleted down to one', async t => {
  const text = renderTransaction(plan, nat({ chains: desired.chains, jumps: [jumpIn, jumpOut, jumpOut, jumpOut] }))
  t.equal(text.match(/^-D OUTPUT /gm)?.length, 2)
  t.notMatch(text, /^-D PREROUTING /m)
  t.notMatch(text, /^-I /m)
})

t.test('a stale chain of ours is emptied and deleted after its jump', async t => {
  const stale = '-A OUTPUT -p tcp -m comment --comment "sidecar-redirect/old" -j SIDECAR_OLD'
  const existing = { chains: new Map([...desired.chains, ['SIDECAR_OLD', ['-A SIDECAR_OLD -j RETURN']]]), jumps: [...desired.jumps, stale] }
  const lines = renderTransaction(plan, nat(existing)).split('\n')
  const del = lines.indexOf(stale.replace('-A', '-D'))
  const drop = lines.indexOf('-X SIDECAR_OLD')
  t.ok(lines.includes(':SIDECAR_OLD - [0:0]'), 'flushed')
  t.ok(del > 0 && drop > del, 'jump deleted before the chain')
})

t.test('clean renders the removal of exactly what is ours', async t => {
  const save = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':FOREIGN - [0:0]',
    ':SIDECAR_INBOUND - [0:0]',
    ':SIDECAR_OUTBOUND - [0:0]',
    jumpIn,
    '-A OUTPUT -p tcp -m comment --comment "not ours: mentions sidecar-redirect later" -j FOREIGN',
    jumpOut,
    '-A FOREIGN -j RETURN',
    '-A SIDECAR_INBOUND -p tcp -j RETURN',
    'COMMIT',
  ].join('\n')
  const existing = ownedState(parseOurTables(save))
  t.same(existing.get('nat')?.jumps, [jumpIn, jumpOut], 'a foreign rule whose comment merely mentions us is not ours')
  const text = renderTransaction(EMPTY_STATE, existing)
  t.same(
    text.split('\n').filter(l => /^(-[DX]|:)/.test(l)),
    [
      ':SIDECAR_INBOUND - [0:0]',
      ':SIDECAR_OUTBOUND - [0:0]',
      jumpIn.replace('-A', '-D'),
      jumpOut.replace('-A', '-D'),
      '-X SIDECAR_INBOUND',
      '-X SIDECAR_OUTBOUND',
    ],
  )
  t.notMatch(text, /FOREIGN/)
})

// A plan using more than the nat table, as a feature builds one: a raw chain and a second nat chain at OUTPUT.
const zoned: FamilyPlan = (() => {
  const base = buildPlan(parseSettings({}), ['ipv4']).families[0]!
  const udp53: Rule = {
    purpose: 'dns',
    protocol: 'udp',
    matches: [{ kind: 'dport', ports: [{ from: 53, to: 53 }] }],
    target: { kind: 'redirect', port: 15053 },
  }
  const zone: Rule = {
    purpose: 'dns-zone',
    protocol: 'udp',
    matches: [{ kind: 'sport', ports: [{ from: 15053, to: 15053 }] }],
    target: { kind: 'ct-zone', zone: 2, direction: 'original' },
  }
  return {
    ...base,
    chains: [chainOf('SIDECAR_DNS_ZONE_OUT', [zone]), ...base.chains.slice(0, 1), chainOf('SIDECAR_DNS', [udp53]), ...base.chains.slice(1)],
  }
})()

t.test('several tables: a section each, in netfilter order; jumps at one hook inserted in the plan order', async t => {
  const text = renderTransaction(renderState(zoned), EMPTY_STATE)
  t.match(text, /^\*raw\n:SIDECAR_DNS_ZONE_OUT - \[0:0\]\n-I OUTPUT 1 -m comment --comment "sidecar-redirect\/dns-zone" -j SIDECAR_DNS_ZONE_OUT\n/)
  t.match(
    text,
    /-A SIDECAR_DNS_ZONE_OUT -p udp -m udp --sport 15053 -m comment --comment "sidecar-redirect\/dns-zone" -j CT --zone-orig 2\nCOMMIT\n\*nat\n/,
  )
  const inserts = text.split('\n').filter(l => l.startsWith('-I OUTPUT') && !l.includes('ZONE'))
  t.same(inserts, [
    '-I OUTPUT 1 -m comment --comment "sidecar-redirect/dns" -j SIDECAR_DNS',
    '-I OUTPUT 2 -p tcp -m comment --comment "sidecar-redirect/outbound" -j SIDECAR_OUTBOUND',
  ])
  t.match(text, /-A SIDECAR_DNS -p udp -m udp --dport 53 -m comment --comment "sidecar-redirect\/dns" -j REDIRECT --to-ports 15053/)
})

t.test('several tables: read back exactly, kept on a re-run, removed whole by clean, and a table given up is emptied', async t => {
  const state = renderState(zoned)
  const read = ownedState(parseOurTables(savedText(state)))
  t.same(compareState(state, read), [], 'read back exactly')
  t.notMatch(renderTransaction(state, read), /^-[ID] /m, 'a re-run moves no jump')
  const clean = renderTransaction(EMPTY_STATE, read)
  t.match(clean, /^\*raw\n:SIDECAR_DNS_ZONE_OUT - \[0:0\]\n-D OUTPUT .*SIDECAR_DNS_ZONE_OUT\n-X SIDECAR_DNS_ZONE_OUT\nCOMMIT\n\*nat\n/)
  const off = renderTransaction(plan, read)
  t.match(
    off,
    /^\*raw\n:SIDECAR_DNS_ZONE_OUT - \[0:0\]\n-D OUTPUT .*\n-X SIDECAR_DNS_ZONE_OUT\nCOMMIT\n/,
    'raw emptied when the plan no longer uses it',
  )
  t.match(off, /-D OUTPUT -m comment --comment "sidecar-redirect\/dns" -j SIDECAR_DNS\n/)
  t.notMatch(off, /-[ID] OUTPUT .*SIDECAR_OUTBOUND/, 'the capture jump stays where it is')
  t.same(renderTransaction(plan, EMPTY_STATE).match(/^\*\w+/gm), ['*nat'], 'a default pod touches only nat')
  const swapped = { ...read.get('nat')!, jumps: [...read.get('nat')!.jumps].reverse() }
  t.match(compareState(state, new Map([...read, ['nat', swapped]])).join('\n'), /jumps from built-in chains/, 'our jumps out of order are drift')
})

t.test('nft: each chain of ours is a base chain at its hook, raw before conntrack, a second nat chain ahead of ours', async t => {
  const text = renderNftTable({ families: [zoned] })
  t.match(
    text,
    /\tchain dns_zone_output \{\n\t\ttype filter hook output priority raw; policy accept;\n\t\tmeta nfproto ipv6 return comment "sidecar-redirect\/leave-ipv6-alone"\n\t\tudp sport 15053 ct original zone set 2 comment "sidecar-redirect\/dns-zone"\n\t\}/,
  )
  t.match(
    text,
    /\tchain dns_output \{\n\t\ttype nat hook output priority -101; policy accept;\n.*\n\t\tudp dport 53 redirect to :15053 comment "sidecar-redirect\/dns"\n\t\}/,
  )
})

t.test('a misplaced capture jump moves back first with the other jumps of ours at its hook, in their order', async t => {
  const state = renderState(zoned)
  const outbound = state.get('nat')!.jumps.find(j => j.includes('SIDECAR_OUTBOUND'))!
  const lines = renderTransaction(state, state, [outbound])
    .split('\n')
    .filter(l => /^-[ID] OUTPUT/.test(l) && !l.includes('ZONE'))
  t.same(lines, [
    '-D OUTPUT -m comment --comment "sidecar-redirect/dns" -j SIDECAR_DNS',
    '-D OUTPUT -p tcp -m comment --comment "sidecar-redirect/outbound" -j SIDECAR_OUTBOUND',
    '-I OUTPUT 1 -m comment --comment "sidecar-redirect/dns" -j SIDECAR_DNS',
    '-I OUTPUT 2 -p tcp -m comment --comment "sidecar-redirect/outbound" -j SIDECAR_OUTBOUND',
  ])
})
