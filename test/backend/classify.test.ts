// Each tool's failures are told apart once, by its classify, at the seam: a table of what the tools print (from
// real runs as root without CAP_NET_ADMIN and as uid 65534, and from their sources), with rows where the telling
// words appear only inside quoted input (a rule's comment, a set's comment) and must not count.
import t from 'tap'
import { classifyIproute } from '../../src/backend/iproute/classify.js'
import { classifyIpset, classifyIptables } from '../../src/backend/iptables/classify.js'
import { classifyNft } from '../../src/backend/nftables/classify.js'
import { EnvironmentError } from '../../src/errors.js'
import { CommandFailed, NotPermitted, toFailure, type Classified, type Classify } from '../../src/exec/exec.js'

type Row = readonly [name: string, exitCode: number, stderr: string, expected: Classified]

const TABLES: readonly (readonly [tool: string, classify: Classify, rows: readonly Row[]])[] = [
  [
    'iptables-nft-restore',
    classifyIptables,
    [
      [
        'no right (exit 4)',
        4,
        'iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n',
        { reason: 'not-permitted' },
      ],
      ['the words without exit 4', 2, 'iptables-restore: line 3 failed: comment "Permission denied" too long\n', { reason: 'refused', line: 3 }],
      ['the legacy lock', 4, 'Another app is currently holding the xtables lock. Stopped waiting after 5s.\n', { reason: 'busy' }],
      [
        'a userspace extension missing',
        2,
        "iptables-restore v1.8.9 (nf_tables): Couldn't load match `cgroup':No such file or directory\n\nError occurred at line: 5\n",
        { reason: 'missing-extension', subject: 'cgroup', line: 5 },
      ],
      [
        'a kernel module missing',
        1,
        'Extension owner revision 0 not supported, missing kernel module?\niptables-restore: line 9 failed\n',
        { reason: 'missing-extension', subject: 'owner', line: 9 },
      ],
      ['a refused line', 1, 'iptables-restore: line 4 failed\n', { reason: 'refused', line: 4 }],
      ['no line named', 1, 'iptables-restore: unable to initialize table nat\n', { reason: 'refused' }],
    ],
  ],
  [
    'nft',
    classifyNft,
    [
      ['not root', 1, 'Operation not permitted (you must be root)\n', { reason: 'not-permitted' }],
      ['no CAP_NET_ADMIN, reading', 1, 'netlink: Error: cache initialization failed: Operation not permitted\n', { reason: 'not-permitted' }],
      [
        'no CAP_NET_ADMIN, writing',
        1,
        '/dev/stdin:3:1-40: Error: Could not process rule: Operation not permitted\nadd table inet t\n^^^^^^^^^^^^^^^^\n',
        { reason: 'not-permitted' },
      ],
      [
        'the words only in an echoed comment',
        1,
        '/dev/stdin:5:9-14: Error: syntax error, unexpected string\nadd rule inet t c comment "Error: x Operation not permitted"\n        ^^^^^^\n',
        { reason: 'refused' },
      ],
      ['a kernel without nf_tables', 1, 'netlink: Error: cache initialization failed: Protocol not supported\n', { reason: 'unsupported' }],
      ['an expression the kernel lacks', 1, '/dev/stdin:4:3-30: Error: Could not process rule: Operation not supported\n', { reason: 'unsupported' }],
      [
        'not supported only in an echoed comment',
        1,
        '/dev/stdin:2:1-5: Error: syntax error\n comment "Error: not supported"\n',
        { reason: 'refused' },
      ],
      ['a plain refusal', 1, '/dev/stdin:7:3-20: Error: Could not process rule: No such file or directory\n', { reason: 'refused' }],
    ],
  ],
  [
    'ipset',
    classifyIpset,
    [
      ['no right', 1, 'ipset v7.17: Kernel error received: Operation not permitted\n', { reason: 'not-permitted' }],
      [
        'the words inside a quoted comment',
        1,
        'ipset v7.17: Error in line 2: Syntax error: "Kernel error received: Operation not permitted" is too long\n',
        { reason: 'refused' },
      ],
      ['a plain refusal', 1, 'ipset v7.17: Error in line 3: Element cannot be added to the set: it is already added\n', { reason: 'refused' }],
    ],
  ],
  [
    'ip',
    classifyIproute,
    [
      ['no right', 2, 'RTNETLINK answers: Operation not permitted\n', { reason: 'not-permitted' }],
      ['there already', 2, 'RTNETLINK answers: File exists\n', { reason: 'exists' }],
      ['a table that never held a route', 2, 'Error: ipv4: FIB table does not exist.\nDump terminated\n', { reason: 'absent' }],
      ['a plain refusal', 2, 'RTNETLINK answers: No such process\n', { reason: 'refused' }],
    ],
  ],
]

for (const [tool, classify, rows] of TABLES) {
  for (const [name, exitCode, stderr, expected] of rows) {
    t.test(`${tool}: ${name}`, async t => {
      t.same(classify({ file: tool, exitCode, stderr }), expected)
      const error = toFailure(`${tool} -f -`, { file: tool, exitCode, stderr }, classify)
      if (expected.reason === 'not-permitted') {
        t.type(error, NotPermitted)
        t.type(error, EnvironmentError, 'a missing right is the environment (exit 3)')
        t.match(error.message, /not permitted \(run as root with CAP_NET_ADMIN\)/)
      } else {
        t.type(error, CommandFailed)
        t.match(error, { reason: expected.reason, exitCode, stderr })
      }
    })
  }
}

t.test('without a classify the seam reads no text: every failure is a plain refusal with its exit status', async t => {
  const error = toFailure('sh -c x', { file: 'sh', exitCode: 4, stderr: 'Permission denied (you must be root)\n' })
  t.type(error, CommandFailed)
  t.match(error, { reason: 'refused', exitCode: 4 })
})
