// "Verified" means no captured TCP can escape: for each kind of foreign rule, in every place netfilter evaluates
// before or beside ours, verify and init give the documented result, a real connection confirms it (where we say
// it escapes, it does), and the foreign rules stay byte-identical through verify, init and clean. One backend per
// file of test/kernel/integration/whole-path/, so each stays well inside tap's time limit on a loaded machine.
import t, { type Test } from 'tap'
import type { Sandbox } from '../../src/commands/sandbox.js'
import { startRelays } from './haproxy.js'
import { foreignOf, initOk, kernelAvailable, POD, POD6, REMOTE, snapshot, withSandbox } from './kernel.js'
import type { BACKENDS } from './rows.js'
import { expectBypassed, expectCaptured, type Path } from './traffic.js'

type Backend = (typeof BACKENDS)[number]

/** The iptables variant a backend programs with, and the other one. Native nftables sits beside both. */
const OWN: Record<Backend, string | undefined> = { 'iptables-nft': 'iptables-nft', 'iptables-legacy': 'iptables-legacy', nftables: undefined }
const OTHER: Record<Backend, string> = { 'iptables-nft': 'iptables-legacy', 'iptables-legacy': 'iptables-nft', nftables: 'iptables-legacy' }

const OUT: Path = { from: 'pod', host: REMOTE, port: 9090 }
const IN6: Path = { from: 'remote', host: POD6, port: 8080 }

interface Row {
  readonly name: string
  /** Backends it applies to: a rule ahead of our jump needs our jump to be in an iptables chain. */
  readonly only?: readonly Backend[]
  /** Puts the foreign rule in place, after our rules. */
  readonly add: (box: Sandbox, backend: Backend) => Promise<unknown>
  /** 'fixable': init moves our jump ahead; 'foreign': only changing the foreign rule would fix it; false: harmless. */
  readonly escapes: 'fixable' | 'foreign' | false
  /** The connection the rule is about, and where it lands when it escapes. */
  readonly path: Path
  readonly escapedTo: string
  /** What verify's report names. */
  readonly names?: (backend: Backend) => RegExp
}

const own =
  (backend: Backend, args: string[], v6 = false) =>
  (box: Sandbox) =>
    box.exec('pod', OWN[backend]!.replace('iptables', v6 ? 'ip6tables' : 'iptables'), args)

const ROWS: readonly Row[] = [
  {
    name: 'a RETURN for a destination ahead of our OUTPUT jump',
    only: ['iptables-nft', 'iptables-legacy'],
    add: (box, b) => own(b, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-d', `${REMOTE}/32`, '-j', 'RETURN'])(box),
    escapes: 'fixable',
    path: OUT,
    escapedTo: 'remote',
    names: b => new RegExp(`${b} ipv4 nat OUTPUT rule 1: -A OUTPUT -d ${REMOTE}/32 -p tcp -j RETURN`),
  },
  {
    name: 'an IPv6 ACCEPT for a port ahead of our PREROUTING jump',
    only: ['iptables-nft', 'iptables-legacy'],
    add: (box, b) => own(b, ['-t', 'nat', '-I', 'PREROUTING', '1', '-p', 'tcp', '--dport', '8080', '-j', 'ACCEPT'], true)(box),
    escapes: 'fixable',
    path: IN6,
    escapedTo: 'app',
    names: b => new RegExp(`${b} ipv6 nat PREROUTING rule 1: .*--dport 8080 -j ACCEPT`),
  },
  {
    name: 'a DNAT in the other iptables variant',
    add: (box, b) =>
      box.exec('pod', OTHER[b], [
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-d',
        REMOTE,
        '--dport',
        '9090',
        '-j',
        'DNAT',
        '--to-destination',
        `${REMOTE}:9091`,
      ]),
    escapes: 'foreign',
    path: OUT,
    escapedTo: 'remote-9091',
    names: b => new RegExp(`${OTHER[b]} ipv4 nat OUTPUT rule 1: .*-j DNAT`),
  },
  {
    name: 'a raw NOTRACK for a destination',
    add: async (box, b) => {
      const tool = OWN[b] ?? 'iptables-nft'
      await box.exec('pod', tool, ['-t', 'raw', '-A', 'OUTPUT', '-p', 'tcp', '-d', REMOTE, '-j', 'CT', '--notrack'])
      await box.exec('pod', tool, ['-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '-s', REMOTE, '-j', 'CT', '--notrack'])
    },
    escapes: 'foreign',
    path: OUT,
    escapedTo: 'remote',
    names: b => new RegExp(`${OWN[b] ?? 'iptables-nft'} ipv4 raw OUTPUT rule 1: .*-j CT --notrack`),
  },
  {
    name: 'a native nft nat chain of someone else at an earlier priority',
    add: async box => {
      await box.exec('pod', 'nft', ['add table inet foreign'])
      await box.exec('pod', 'nft', ['add chain inet foreign early { type nat hook output priority -150; }'])
      await box.exec('pod', 'nft', [`add rule inet foreign early ip daddr ${REMOTE} tcp dport 9090 dnat ip to ${REMOTE}:9091`])
    },
    escapes: 'foreign',
    path: OUT,
    escapedTo: 'remote-9091',
    names: () => /nft inet foreign early rule 1: ip daddr 198\.18\.0\.2 tcp dport 9090 dnat ip to/,
  },
  {
    name: 'harmless: UDP ahead of our jump, a RETURN in the other variant, a later native DNAT, a rule after ours',
    add: async (box, b) => {
      if (OWN[b]) await own(b, ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'udp', '-j', 'RETURN'])(box)
      if (OWN[b]) await own(b, ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-j', 'RETURN'])(box)
      await box.exec('pod', OTHER[b], ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-j', 'RETURN'])
      await box.exec('pod', 'nft', ['add table inet foreign'])
      await box.exec('pod', 'nft', ['add chain inet foreign late { type nat hook output priority 0; }'])
      await box.exec('pod', 'nft', [`add rule inet foreign late ip daddr ${REMOTE} tcp dport 9090 dnat ip to ${REMOTE}:9091`])
    },
    escapes: false,
    path: OUT,
    escapedTo: 'remote',
  },
]

const expectExit = async (t: Test, box: Sandbox, env: Record<string, string>, command: string, code: number): Promise<string> => {
  const result = await box.runInit({ ISTIO_VERIFY: 'rules', ...env }, [command])
  t.equal(result.exitCode, code, `${command} exits ${code}`, { output: result.output })
  return result.output
}

const rowsOn = (backend: Backend): void => {
  for (const row of ROWS.filter(r => !r.only || r.only.includes(backend))) {
    t.test(`${backend}: ${row.name}`, async t => {
      if (!kernelAvailable(t)) return
      const box = await withSandbox(t)
      await box.serve('pod', ['proxy=[::]:5001', 'app=[::]:8080'])
      await box.serve('remote', ['remote=[::]:9090', 'remote-9091=[::]:9091'])
      const env = { ISTIO_BACKEND: backend }
      await initOk(t, box, env)
      await row.add(box, backend)
      const foreign = foreignOf(await snapshot(box))
      const verified = await expectExit(t, box, env, 'verify', row.escapes ? 5 : 0)
      if (row.names) t.match(verified, row.names(backend), 'verify names the rule, its variant, table, chain and position')
      if (row.escapes) await expectBypassed(t, box, row.path, row.escapedTo)
      else await expectCaptured(t, box, row.path)
      t.equal(foreignOf(await snapshot(box)), foreign, 'verify touched nothing')
      const init = await expectExit(t, box, env, 'init', row.escapes === 'foreign' ? 5 : 0)
      if (row.escapes === 'foreign') t.match(init, /init cannot change it without touching a rule that is not ours/)
      if (row.escapes === false) t.match(init, /already in place, left untouched/)
      t.equal(foreignOf(await snapshot(box)), foreign, 'init left the foreign rules byte-identical')
      if (row.escapes === 'fixable') {
        await expectCaptured(t, box, row.path)
        await expectExit(t, box, env, 'verify', 0)
      }
      await expectExit(t, box, env, 'clean', 0)
      t.equal(foreignOf(await snapshot(box)), foreign, 'clean left the foreign rules byte-identical')
    })
  }
}

// TPROXY inbound mode: our capture is mangle PREROUTING's TPROXY (-150). Two transparent haproxies stand in for the
// proxy (our port, 15006) and someone else's (15999); each relays to a labelled listener, so the client's answer
// says who took its connection: "proxy", "foreign", or "app" when it escaped both.
const TPROXY_ENV = { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_CAPTURE_PORT: '15006' }
const IN4: Path = { from: 'remote', host: POD, port: 8080 }

const nftChain = (priority: number, rule: string) => async (box: Sandbox) => {
  await box.exec('pod', 'nft', ['add table inet foreign'])
  await box.exec('pod', 'nft', [`add chain inet foreign early { type filter hook prerouting priority ${priority}; }`])
  await box.exec('pod', 'nft', [`add rule inet foreign early ${rule}`])
}

interface TproxyRow {
  readonly name: string
  readonly only?: readonly Backend[]
  readonly add: (box: Sandbox, backend: Backend) => Promise<unknown>
  readonly escapes: 'fixable' | 'foreign' | false
  /** Who takes the inbound connection while the rule is in place (before init fixes what it can). */
  readonly lands: 'app' | 'foreign' | 'proxy'
  readonly names?: (backend: Backend) => RegExp
}

const TPROXY_ROWS: readonly TproxyRow[] = [
  {
    name: 'an ACCEPT ahead of our TPROXY jump in mangle PREROUTING',
    only: ['iptables-nft', 'iptables-legacy'],
    add: (box, b) => own(b, ['-t', 'mangle', '-I', 'PREROUTING', '1', '-p', 'tcp', '-j', 'ACCEPT'])(box),
    escapes: 'fixable',
    lands: 'app',
    names: b => new RegExp(`${b} ipv4 mangle PREROUTING rule 1: -A PREROUTING -p tcp -j ACCEPT\\s+it can end PREROUTING`),
  },
  {
    // An accept ends only its own base chain: ours, in the other variant's mangle, still runs.
    name: "the same ACCEPT in the other variant's mangle",
    add: (box, b) => box.exec('pod', OTHER[b], ['-t', 'mangle', '-I', 'PREROUTING', '1', '-p', 'tcp', '-j', 'ACCEPT']),
    escapes: false,
    lands: 'proxy',
  },
  {
    // TPROXY needs no conntrack: an untracked packet is never ESTABLISHED, so TPROXY takes every one.
    name: 'a raw NOTRACK',
    add: (box, b) =>
      box.exec('pod', OWN[b] ?? 'iptables-nft', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '8080', '-j', 'CT', '--notrack']),
    escapes: false,
    lands: 'proxy',
  },
  {
    // A nat binding comes after TPROXY chose the socket.
    name: 'a nat DNAT to another port',
    add: (box, b) =>
      box.exec('pod', OWN[b] ?? 'iptables-nft', [
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-p',
        'tcp',
        '--dport',
        '8080',
        '-j',
        'DNAT',
        '--to-destination',
        `${POD}:15999`,
      ]),
    escapes: false,
    lands: 'proxy',
  },
  {
    name: 'a native nft chain at priority -200 that accepts',
    add: nftChain(-200, 'tcp dport 8080 accept'),
    escapes: false,
    lands: 'proxy',
  },
  {
    // Ours runs later and assigns the socket again.
    name: 'a native nft chain at priority -200 that TPROXYs to another port',
    add: nftChain(-200, 'tcp dport 8080 tproxy ip to :15999 meta mark set 0x539 accept'),
    escapes: false,
    lands: 'proxy',
  },
  {
    name: 'a native nft chain at priority -140 that TPROXYs to another port',
    add: nftChain(-140, 'tcp dport 8080 tproxy ip to :15999 meta mark set 0x539 accept'),
    escapes: 'foreign',
    lands: 'foreign',
    names: () =>
      /nft inet foreign early rule 1: tcp dport 8080 tproxy ip to :15999 .*\s+it can hand inbound TCP we capture to another socket at priority -140, after our TPROXY/,
  },
]

const tproxyRowsOn = (backend: Backend): void => {
  for (const row of TPROXY_ROWS.filter(r => !r.only || r.only.includes(backend))) {
    t.test(`${backend}, TPROXY mode: ${row.name}`, async t => {
      if (!kernelAvailable(t)) return
      const box = await withSandbox(t)
      await box.serve('pod', ['proxy=127.0.0.1:7001', 'foreign=127.0.0.1:7002', 'app=[::]:8080'])
      await startRelays(t, box, [
        [15006, 7001],
        [15999, 7002],
      ])
      const env = { ISTIO_BACKEND: backend, ...TPROXY_ENV }
      await initOk(t, box, env)
      await expectLands(t, box, 'proxy', 'before the foreign rule')
      await row.add(box, backend)
      const foreign = foreignOf(await snapshot(box))
      const verified = await expectExit(t, box, env, 'verify', row.escapes ? 5 : 0)
      if (row.names) t.match(verified, row.names(backend), 'verify names the rule, its variant, table, chain and position')
      await expectLands(t, box, row.lands, 'with the foreign rule')
      t.equal(foreignOf(await snapshot(box)), foreign, 'verify touched nothing')
      const init = await expectExit(t, box, env, 'init', row.escapes === 'foreign' ? 5 : 0)
      if (row.escapes === 'foreign') t.match(init, /init cannot change it without touching a rule that is not ours/)
      t.equal(foreignOf(await snapshot(box)), foreign, 'init left the foreign rules byte-identical')
      if (row.escapes === 'fixable') {
        await expectLands(t, box, 'proxy', 'after init moved our jump first')
        await expectExit(t, box, env, 'verify', 0)
      }
      await expectExit(t, box, env, 'clean', 0)
      t.equal(foreignOf(await snapshot(box)), foreign, 'clean left the foreign rules byte-identical')
    })
  }
}

/** One real inbound connection from the remote namespace to the app's port; the answer says who took it. */
async function expectLands(t: Test, box: Sandbox, label: TproxyRow['lands'], when: string): Promise<void> {
  const result = await box.connect(IN4.from, IN4.host, IN4.port)
  t.equal(result.reply?.label, label, `${when}: remote -> ${POD}:8080 lands on ${label}`, { result })
}

/** wholePathTests runs every row, and every TPROXY row, on one backend. */
export const wholePathTests = (backend: Backend): void => {
  rowsOn(backend)
  tproxyRowsOn(backend)
}
