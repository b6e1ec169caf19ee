import t from 'tap'
import { compareState, lineDiff, memberDiff } from '../../../src/backend/compare.js'
import type { OwnedState, TableState } from '../../../src/backend/iptables/render-iptables.js'

const chains = (lines: string[]) => new Map([['SIDECAR_OUTBOUND', lines]])
const nat = (state: TableState): OwnedState => new Map([['nat', state]])

t.test('identical states have no drift', async t => {
  t.same(compareState(nat({ chains: chains(['a', 'b']), jumps: ['j'] }), nat({ chains: chains(['a', 'b']), jumps: ['j'] })), [])
})

t.test('a deleted rule, an added rule and a reordering are each shown', async t => {
  t.same(compareState(nat({ chains: chains(['a', 'b', 'c']), jumps: [] }), nat({ chains: chains(['a', 'c']), jumps: [] })), [
    'chain SIDECAR_OUTBOUND:',
    '  a',
    '- b',
    '  c',
  ])
  t.same(lineDiff(['a', 'c'], ['a', 'x', 'c']), ['  a', '+ x', '  c'])
  t.same(lineDiff(['a', 'b'], ['b', 'a']).filter(l => !l.startsWith(' ')).length, 2, 'order matters')
})

t.test('missing and unplanned chains and jumps are drift', async t => {
  t.same(compareState(nat({ chains: chains(['a']), jumps: ['j'] }), nat({ chains: new Map(), jumps: [] })), [
    'jumps from built-in chains:',
    '- j',
    'chain SIDECAR_OUTBOUND: missing',
  ])
  t.same(compareState(nat({ chains: new Map(), jumps: ['j'] }), nat({ chains: new Map([['SIDECAR_X', []]]), jumps: ['j', 'j'] })), [
    'jumps from built-in chains:',
    '  j',
    '+ j',
    'chain SIDECAR_X: present but not planned',
  ])
})

t.test('memberDiff compares set members as sets: any order is the same set; the difference is listed sorted', async t => {
  t.same(memberDiff('set S:', ['198.18.0.1', '198.18.0.2', '198.18.1.0/24'], ['198.18.1.0/24', '198.18.0.1', '198.18.0.2']), [])
  t.same(memberDiff('set S:', ['b', 'a', 'c'], ['d', 'c', 'a']), ['set S:', '- b', '+ d'])
  t.same(memberDiff('set S:', ['a'], []), ['set S:', '- a'])
  t.same(memberDiff('set S:', [], ['a']), ['set S:', '+ a'])
  // As ipset prints them: in hash order, 100,000 of them.
  const members = Array.from({ length: 100_000 }, (_, i) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255},tcp:443`)
  const shuffled = [...members].sort(() => Math.random() - 0.5)
  t.same(memberDiff('set S:', members, shuffled), [])
  t.same(memberDiff('set S:', members, shuffled.slice(1)), ['set S:', `- ${shuffled[0]}`])
})
