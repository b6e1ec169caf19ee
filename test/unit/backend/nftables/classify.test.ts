// nft's failures, told apart once by its classify: a table of what nft prints (from real runs as uid 65534 and from
// its source), with rows where the telling words appear only in an echoed rule or comment and must not count.
import { classifyNft } from '../../../../src/backend/nftables/classify.js'
import { classifyTable } from '../../../helpers/classify-rows.js'

classifyTable('nft', classifyNft, [
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
  ['not supported only in an echoed comment', 1, '/dev/stdin:2:1-5: Error: syntax error\n comment "Error: not supported"\n', { reason: 'refused' }],
  ['a plain refusal', 1, '/dev/stdin:7:3-20: Error: Could not process rule: No such file or directory\n', { reason: 'refused' }],
])
