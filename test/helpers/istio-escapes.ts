// Each kind of escape the whole-path check knows, in Istio's mode: added beside the rules `istio-iptables`
// wrote, `verify istio-iptables` names it (exit 5) and a real connection confirms it escapes; `istio-iptables`
// again fixes the fixable one and fails (exit 1) on a foreign one; the foreign rules stay byte-identical.
import type { Test } from 'tap'
import type { Sandbox } from '../../src/sandbox/sandbox.js'
import { foreignOf, kernelAvailable, REMOTE, snapshot } from './kernel.js'
import { BACKEND_ARGS, expectCode, INIT_ARGS, OTHER, OUT, OWN, pod, type Backend } from './istio-box.js'
import { expectBypassed, expectCaptured } from './traffic.js'

interface Escape {
  readonly name: string
  readonly only?: readonly Backend[]
  readonly add: (box: Sandbox, backend: Backend) => Promise<unknown>
  readonly escapes: 'fixable' | 'foreign' | false
  readonly escapedTo: string
}

const ESCAPES: readonly Escape[] = [
  {
    name: 'a RETURN ahead of the ISTIO_OUTPUT jump',
    only: ['iptables-nft', 'iptables-legacy'],
    add: (box, b) => box.exec('pod', OWN[b]!, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-d', `${REMOTE}/32`, '-j', 'RETURN']),
    escapes: 'fixable',
    escapedTo: 'remote',
  },
  {
    name: 'a DNAT in the other iptables variant',
    add: (box, b) =>
      box.exec('pod', OTHER[b], ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', REMOTE, '-j', 'DNAT', '--to-destination', `${REMOTE}:9091`]),
    escapes: 'foreign',
    escapedTo: 'remote-9091',
  },
  {
    name: 'a raw NOTRACK',
    // Both ways: a reply tracked as a new connection would meet the inbound capture.
    add: async (box, b) => {
      await box.exec('pod', OWN[b] ?? 'iptables-nft', ['-t', 'raw', '-A', 'OUTPUT', '-p', 'tcp', '-d', REMOTE, '-j', 'CT', '--notrack'])
      await box.exec('pod', OWN[b] ?? 'iptables-nft', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '-s', REMOTE, '-j', 'CT', '--notrack'])
    },
    escapes: 'foreign',
    escapedTo: 'remote',
  },
  {
    name: 'a native nft nat chain at an earlier priority',
    add: async box => {
      await box.exec('pod', 'nft', ['add table inet foreign'])
      await box.exec('pod', 'nft', ['add chain inet foreign early { type nat hook output priority -150; }'])
      await box.exec('pod', 'nft', [`add rule inet foreign early ip daddr ${REMOTE} tcp dport 9090 dnat ip to ${REMOTE}:9091`])
    },
    escapes: 'foreign',
    escapedTo: 'remote-9091',
  },
  {
    name: 'harmless: UDP ahead, a RETURN in the other variant, a later native DNAT',
    add: async (box, b) => {
      if (OWN[b]) await box.exec('pod', OWN[b]!, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'udp', '-j', 'RETURN'])
      await box.exec('pod', OTHER[b], ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-j', 'RETURN'])
      await box.exec('pod', 'nft', ['add table inet foreign'])
      await box.exec('pod', 'nft', ['add chain inet foreign late { type nat hook output priority 0; }'])
      await box.exec('pod', 'nft', [`add rule inet foreign late ip daddr ${REMOTE} tcp dport 9090 dnat ip to ${REMOTE}:9091`])
    },
    escapes: false,
    escapedTo: 'remote',
  },
]

/** Each escape that applies to `backend`: found by verify, confirmed by a connection, and what istio-iptables does then. */
export const runEscapes = (t: Test, backend: Backend): void => {
  const args = [...INIT_ARGS, ...BACKEND_ARGS[backend]]
  for (const row of ESCAPES.filter(r => !r.only || r.only.includes(backend))) {
    t.test(`${backend}: ${row.name}`, async t => {
      if (!kernelAvailable(t)) return
      const box = await pod(t)
      await expectCode(t, box, ['istio-iptables', ...args], 0)
      await box.serve('pod', ['proxy=[::]:15001', 'inbound=[::]:15006', 'app=[::]:8080'])
      await box.serve('remote', ['remote=[::]:9090', 'remote-9091=[::]:9091'])
      await expectCaptured(t, box, OUT)
      await row.add(box, backend)
      const foreign = foreignOf(await snapshot(box))
      const verified = await expectCode(t, box, ['verify', 'istio-iptables', ...args], row.escapes ? 5 : 0)
      if (row.escapes) {
        t.match(verified, /whole path: rules that can keep TCP we capture from reaching our redirect/)
        await expectBypassed(t, box, OUT, row.escapedTo)
      } else await expectCaptured(t, box, OUT)
      // Istio's run: the fixable one is fixed (our jump first, theirs untouched); a foreign one fails it, exit 1.
      await expectCode(t, box, ['istio-iptables', ...args], row.escapes === 'foreign' ? 1 : 0)
      if (row.escapes === 'fixable') {
        await expectCaptured(t, box, OUT)
        await expectCode(t, box, ['verify', 'istio-iptables', ...args], 0)
      }
      t.equal(foreignOf(await snapshot(box)), foreign, 'the foreign rules are byte-identical')
      await expectCode(t, box, ['clean', 'istio-iptables', ...BACKEND_ARGS[backend]], 0)
      t.equal(foreignOf(await snapshot(box)), foreign, '... after clean too')
    })
  }
}
