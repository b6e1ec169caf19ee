// ip's and tc's failures, told apart once by their classify: a table of what iproute2 prints (from real runs as
// uid 65534 and from its source).
import { classifyIproute } from '../../../../src/backend/iproute/classify.js'
import { classifyTable } from '../../../helpers/classify-rows.js'

classifyTable('ip', classifyIproute, [
  ['no right', 2, 'RTNETLINK answers: Operation not permitted\n', { reason: 'not-permitted' }],
  ['there already', 2, 'RTNETLINK answers: File exists\n', { reason: 'exists' }],
  ['a table that never held a route', 2, 'Error: ipv4: FIB table does not exist.\nDump terminated\n', { reason: 'absent' }],
  ['a plain refusal', 2, 'RTNETLINK answers: No such process\n', { reason: 'refused' }],
])
