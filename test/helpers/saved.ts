// What iptables-save prints once a state of ours is applied in a namespace that held nothing else.
import type { OwnedState } from '../../src/backend/iptables/render-iptables.js'

export const savedText = (state: OwnedState): string =>
  [
    ...[...state].flatMap(([table, s]) => [
      `*${table}`,
      ':PREROUTING ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ...[...s.chains.keys()].map(c => `:${c} - [0:0]`),
      ...s.jumps,
      ...[...s.chains.values()].flat(),
      'COMMIT',
    ]),
    '',
  ].join('\n')
