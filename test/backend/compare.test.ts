import t from 'tap'
import { compareState, lineDiff } from '../../src/backend/compare.js'
import type { OwnedState, TableState } from '../../src/backend/iptables/render-iptables.js'

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
