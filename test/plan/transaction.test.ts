import t from 'tap'
import { buildPlan } from '../../src/plan/build.js'
import { EMPTY_STATE, renderState, renderTransaction } from '../../src/backend/iptables/render-iptables.js'
import { parseSettings } from '../../src/settings/parse.js'
import { ownedState, parseNatTable } from '../../src/backend/iptables/parse-save.js'

const desired = renderState(buildPlan(parseSettings({}), ['ipv4']).families[0]!)
const jumpIn = desired.jumps.find(j => j.startsWith('-A PREROUTING'))!
const jumpOut = desired.jumps.find(j => j.startsWith('-A OUTPUT'))!

t.test('into an empty table: declare chains, insert both jumps first, fill', async t => {
  const text = renderTransaction(desired, EMPTY_STATE)
  t.match(text, /^\*nat\n:SIDECAR_INBOUND - \[0:0\]\n:SIDECAR_OUTBOUND - \[0:0\]\n/)
  t.equal(text.match(/^-I (PREROUTING|OUTPUT) 1 /gm)?.length, 2)
  t.notMatch(text, /^-D /m)
  t.match(text, /COMMIT\n$/)
})

t.test('over itself: jumps kept, no insert or delete, chains refilled in the same transaction', async t => {
  const text = renderTransaction(desired, desired)
  t.notMatch(text, /^-[ID] /m)
  t.equal(text.match(/^-A SIDECAR_/gm)?.length, 4)
})

t.test('duplicate jumps left by a race are deleted down to one', async t => {
  const text = renderTransaction(desired, { chains: desired.chains, jumps: [jumpIn, jumpOut, jumpOut, jumpOut] })
  t.equal(text.match(/^-D OUTPUT /gm)?.length, 2)
  t.notMatch(text, /^-D PREROUTING /m)
  t.notMatch(text, /^-I /m)
})

t.test('a stale chain of ours is emptied and deleted after its jump', async t => {
  const stale = '-A OUTPUT -p tcp -m comment --comment "sidecar-redirect/old" -j SIDECAR_OLD'
  const existing = { chains: new Map([...desired.chains, ['SIDECAR_OLD', ['-A SIDECAR_OLD -j RETURN']]]), jumps: [...desired.jumps, stale] }
  const lines = renderTransaction(desired, existing).split('\n')
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
  const existing = ownedState(parseNatTable(save))
  t.same(existing.jumps, [jumpIn, jumpOut], 'a foreign rule whose comment merely mentions us is not ours')
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
