// iptables' and ipset's failures, told apart once by their classify: tables of what they print (from real runs as
// uid 65534 and from their sources), with rows where the telling words appear only inside quoted input.
import t from 'tap'
import { classifyIpset, classifyIptables } from '../../../../src/backend/iptables/classify.js'
import { CommandFailed, failedFor, toFailure } from '../../../../src/exec/exec.js'
import { classifyTable } from '../../../helpers/classify-rows.js'

classifyTable('iptables-nft-restore', classifyIptables, [
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
])

classifyTable('ipset', classifyIpset, [
  ['no right', 1, 'ipset v7.17: Kernel error received: Operation not permitted\n', { reason: 'not-permitted' }],
  [
    'the words inside a quoted comment',
    1,
    'ipset v7.17: Error in line 2: Syntax error: "Kernel error received: Operation not permitted" is too long\n',
    { reason: 'refused' },
  ],
  ['a plain refusal', 1, 'ipset v7.17: Error in line 3: Element cannot be added to the set: it is already added\n', { reason: 'refused' }],
])

t.test('without a classify the seam reads no text: every failure is a plain refusal with its exit status', async t => {
  const error = toFailure('sh -c x', { file: 'sh', exitCode: 4, stderr: 'Permission denied (you must be root)\n' })
  t.type(error, CommandFailed)
  t.ok(failedFor(error, 'refused'))
  t.match(error, { exitCode: 4 })
})
