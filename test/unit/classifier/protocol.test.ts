// Who a connection is counted against: the pod's cgroup where the path names one, never the net_cls path (the
// classifier moves peers there), and nothing (so the PID) when every path is the root.
import t from 'tap'
import { peerGroup } from '../../../src/classifier/protocol.js'

const POD = 'pod0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b'
const rows: [string, string, string | undefined][] = [
  ['cgroupfs driver: the pod, not the container', `0::/kubepods/burstable/${POD}/0123abcd\n`, `/kubepods/burstable/${POD}`],
  [
    'systemd driver: the pod slice',
    `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-${POD.replace(/-/g, '_')}.slice/cri-containerd-0123.scope\n`,
    `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-${POD.replace(/-/g, '_')}.slice`,
  ],
  ['a cgroup the pod made below its own still counts as the pod', `0::/kubepods/${POD}/c1/child-7\n`, `/kubepods/${POD}`],
  ['no pod in the path: the cgroup itself', '0::/system.slice/agent.service\n', '/system.slice/agent.service'],
  ['hybrid host, v2 unused: a v1 hierarchy', `12:net_cls,net_prio:/sidecar-redirect-100001\n4:memory:/kubepods/${POD}/c\n0::/\n`, `/kubepods/${POD}`],
  ['net_cls alone is never used', '3:net_cls:/sidecar-redirect-100001\n0::/\n', undefined],
  ['every path the root', '9:name=systemd:/\n4:memory:/\n0::/\n', undefined],
  ['nothing readable', '', undefined],
]
for (const [what, text, expected] of rows) t.equal(peerGroup(text), expected, what)
