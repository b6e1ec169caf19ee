// The whole path down to the device, decided by traffic in both families, one backend per file of
// test/kernel/integration/devices/ (so each stays well inside tap's time limit): a foreign hook that sees packets before or
// after netfilter (an nft netdev or inet ingress/egress chain, a tc filter, a BPF program) lets a real connection
// escape where we say it does, verify exits 5 naming it, and init refuses (only changing the foreign hook would fix
// it); what cannot matter leaves capture intact with verify at exit 0; a BPF program, which cannot be judged, fails
// closed until accepted by its tag. Every foreign hook stays byte-identical through verify, init and clean.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../src/commands/sandbox.js'
import { PROGRAMS, writeBpfObject } from './bpf-object.js'
import { startRelays } from './haproxy.js'
import { foreignOf, initOk, kernelAvailable, POD, POD6, REMOTE, REMOTE6, snapshot, withSandbox } from './kernel.js'
import type { BACKENDS } from './rows.js'

/** The pod's end of the sandbox's veth (see createSandbox): `sr<id>p` in namespace `sr-<id>-pod`. */
const podLink = (box: Sandbox): string => box.podNs.replace(/^sr-(\w+)-pod$/, 'sr$1p')

const bpfDir = mkdtempSync(`${tmpdir()}/sr-bpf-`)
t.teardown(() => rmSync(bpfDir, { recursive: true, force: true }))
const TC_PASS = writeBpfObject(`${bpfDir}/pass.o`, 'classifier', PROGRAMS.pass(0))
const XDP_PASS = writeBpfObject(`${bpfDir}/xdp.o`, 'xdp', PROGRAMS.pass(2))

/** tc state of every device of the pod: qdiscs and the filters of each clsact. */
const tcSnapshot = async (box: Sandbox): Promise<string> => {
  const links = (await box.exec('pod', 'ip', ['-o', 'link', 'show'])).stdout
  const parts = [(await box.exec('pod', 'tc', ['qdisc', 'show'])).stdout, links.replace(/ (qlen|link\/\S+) .*$/gm, '')]
  for (const dev of links.split('\n').flatMap(l => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? [])) {
    for (const where of ['ingress', 'egress']) parts.push((await box.exec('pod', 'tc', ['filter', 'show', 'dev', dev, where])).stdout)
  }
  return parts.join('\n')
}

const nft = (box: Sandbox, text: string) => box.exec('pod', 'nft', ['-f', '-'], text)

/** A stateless port rewrite of one direction and its reverse on the replies: netdev chains on the pod's link. */
const netdevRewrite = (box: Sandbox, hook: 'ingress' | 'egress', from: number, to: number) => {
  const link = podLink(box)
  const back = hook === 'ingress' ? 'egress' : 'ingress'
  return nft(
    box,
    `table netdev foreign {
  chain forth { type filter hook ${hook} device "${link}" priority 0; tcp dport ${from} tcp dport set ${to}; }
  chain back { type filter hook ${back} device "${link}" priority 0; tcp sport ${to} tcp sport set ${from}; }
}
`,
  )
}

interface Landing {
  readonly from: 'pod' | 'remote'
  /** The address per family. */
  readonly hosts: readonly [string, string]
  readonly port: number
  /** Who takes the connection while the foreign hook is in place. */
  readonly lands: string
  /** Whether that listener sees an original destination (REDIRECT) or none. */
  readonly redirected: boolean
}

interface Row {
  readonly name: string
  readonly env?: Record<string, string>
  readonly tproxy?: boolean
  readonly add: (box: Sandbox) => Promise<unknown>
  /** verify's exit with the hook in place, and what it names. */
  readonly verify: 0 | 5
  readonly names?: (box: Sandbox) => RegExp
  readonly landing: Landing
  /** With this added to the settings, verify accepts it (exit 0) and the landing stays. */
  readonly accept?: (box: Sandbox) => Promise<Record<string, string>>
}

const INBOUND = (lands: string, redirected: boolean): Landing => ({ from: 'remote', hosts: [POD, POD6], port: 8080, lands, redirected })

/** The tag tc prints for the program on the pod's link, at ingress. */
const tcTag = async (box: Sandbox): Promise<string> =>
  /tag ([0-9a-f]{16})/.exec((await box.exec('pod', 'tc', ['filter', 'show', 'dev', podLink(box), 'ingress'])).stdout)?.[1] ?? 'none'

const ROWS: readonly Row[] = [
  {
    name: 'an nft netdev ingress rewrite of a captured port into an excluded one',
    env: { ISTIO_INBOUND_EXCLUDE_PORTS: '15021' },
    add: box => netdevRewrite(box, 'ingress', 8080, 15021),
    verify: 5,
    names: box =>
      new RegExp(
        `nft netdev foreign forth rule 1: tcp dport 8080 tcp dport set 15021\\s+it can rewrite inbound TCP we capture as it arrives on ${podLink(box)}`,
      ),
    landing: INBOUND('app-15021', false),
  },
  {
    name: 'an nft netdev egress rewrite of an excluded port into a captured one',
    env: { ISTIO_OUTBOUND_EXCLUDE_PORTS: '15021' },
    add: box => netdevRewrite(box, 'egress', 15021, 9090),
    verify: 5,
    names: box => new RegExp(`nft netdev foreign forth rule 1: tcp dport 15021 tcp dport set 9090\\s+it can rewrite TCP leaving by ${podLink(box)}`),
    landing: { from: 'pod', hosts: [REMOTE, REMOTE6], port: 15021, lands: 'remote', redirected: false },
  },
  {
    name: 'an nft inet ingress chain that rewrites a captured port into an excluded one',
    env: { ISTIO_INBOUND_EXCLUDE_PORTS: '15021' },
    add: async box => {
      await nft(
        box,
        `table inet foreign {\n  chain in { type filter hook ingress device "${podLink(box)}" priority -10; tcp dport 8080 tcp dport set 15021; }\n}\n`,
      )
      await nft(
        box,
        `table netdev back {\n  chain out { type filter hook egress device "${podLink(box)}" priority 0; tcp sport 15021 tcp sport set 8080; }\n}\n`,
      )
    },
    verify: 5,
    names: () => /nft inet foreign in rule 1: tcp dport 8080 tcp dport set 15021\s+it can rewrite inbound TCP we capture/,
    landing: INBOUND('app-15021', false),
  },
  {
    // TPROXY exempts lo's own connections; a packet moved onto lo from outside is new there, so it is diverted.
    name: 'a tc ingress filter that redirects inbound TCP into lo, in TPROXY mode',
    tproxy: true,
    add: async box => {
      const link = podLink(box)
      await box.exec('pod', 'tc', ['qdisc', 'add', 'dev', link, 'clsact'])
      for (const [protocol, match] of [
        ['ip', 'ip'],
        ['ipv6', 'ip6'],
      ] as const) {
        await box.exec('pod', 'tc', [
          ...['filter', 'add', 'dev', link, 'ingress', 'protocol', protocol, 'u32', 'match', match, 'dport', '8080', '0xffff'],
          // Into lo's ingress: an egress redirect would hand lo a frame addressed to another MAC, which it drops.
          ...['action', 'mirred', 'ingress', 'redirect', 'dev', 'lo'],
        ])
      }
    },
    verify: 5,
    names: box =>
      new RegExp(
        `tc dev ${podLink(box)} ingress rule \\d+: protocol ip pref \\d+ u32 .*action mirred redirect dev lo\\s+it can redirect inbound TCP`,
      ),
    landing: INBOUND('proxy', false),
  },
  {
    name: 'harmless: a netdev rewrite of UDP, a rewrite of an excluded port, a classic BPF classifier',
    env: { ISTIO_INBOUND_EXCLUDE_PORTS: '15021' },
    add: async box => {
      const link = podLink(box)
      await nft(
        box,
        `table netdev foreign {\n  chain in { type filter hook ingress device "${link}" priority 0; udp dport 53 udp dport set 5353; tcp dport 15021 tcp dport set 15022; }\n}\n`,
      )
      await box.exec('pod', 'tc', ['qdisc', 'add', 'dev', link, 'clsact'])
      await box.exec('pod', 'tc', ['filter', 'add', 'dev', link, 'ingress', 'protocol', 'all', 'bpf', 'bytecode', '1,6 0 0 0,'])
    },
    verify: 0,
    landing: INBOUND('proxy', true),
  },
  {
    name: 'an eBPF tc program (it passes every packet, but that cannot be judged)',
    add: async box => {
      await box.exec('pod', 'tc', ['qdisc', 'add', 'dev', podLink(box), 'clsact'])
      await box.exec('pod', 'tc', ['filter', 'add', 'dev', podLink(box), 'ingress', 'bpf', 'da', 'obj', TC_PASS, 'sec', 'classifier'])
    },
    verify: 5,
    names: box =>
      new RegExp(`tc dev ${podLink(box)} ingress rule 1: .* program [0-9a-f]{16}\\s+it runs a BPF program \\([0-9a-f]{16}\\) .* cannot be judged`),
    landing: INBOUND('proxy', true),
    accept: async box => ({ ISTIO_ACCEPT_BPF_PROGRAMS: await tcTag(box) }),
  },
  {
    name: 'an XDP program',
    add: box => box.exec('pod', 'ip', ['link', 'set', 'dev', podLink(box), 'xdpgeneric', 'obj', XDP_PASS, 'sec', 'xdp']),
    verify: 5,
    names: box => new RegExp(`xdp dev ${podLink(box)} xdp rule 1: xdp program [0-9a-f]{16}\\s+it runs a BPF program`),
    landing: INBOUND('proxy', true),
    accept: async () => ({ ISTIO_ACCEPT_BPF_PROGRAMS: '*' }),
  },
]

const expectExit = async (t: Test, box: Sandbox, env: Record<string, string>, command: string, code: number): Promise<string> => {
  const result = await box.runInit({ ISTIO_VERIFY: 'rules', ...env }, [command])
  t.equal(result.exitCode, code, `${command} exits ${code}`, { output: result.output })
  return result.output
}

/** Where the connection lands, in each family: the listener's label, and whether it saw an original destination. */
const expectLanding = async (t: Test, box: Sandbox, landing: Landing, when: string): Promise<void> => {
  for (const host of landing.hosts) {
    const result = await box.connect(landing.from, host, landing.port)
    t.same(
      { label: result.reply?.label, redirected: result.reply?.originalDst != null },
      { label: landing.lands, redirected: landing.redirected },
      `${when}: ${landing.from} -> ${host}:${landing.port} lands on ${landing.lands}`,
      { result },
    )
  }
}

const TPROXY_ENV = { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_CAPTURE_PORT: '15006' }

/** deviceTests runs every row on one backend. */
export const deviceTests = (backend: (typeof BACKENDS)[number]): void => {
  for (const row of ROWS) {
    t.test(`${backend}: ${row.name}`, async t => {
      if (!kernelAvailable(t)) return
      const box = await withSandbox(t)
      await box.serve('remote', ['remote=[::]:9090'])
      if (row.tproxy) {
        // The proxy is a transparent haproxy relaying to "proxy"; the app answers as "app".
        await box.serve('pod', ['proxy=[::]:7001', 'app=[::]:8080', 'app-15021=[::]:15021'])
        await startRelays(t, box, [[15006, 7001]])
      } else await box.serve('pod', ['proxy=[::]:5001', 'app=[::]:8080', 'app-15021=[::]:15021'])
      const env = { ISTIO_BACKEND: backend, ...(row.tproxy ? TPROXY_ENV : {}), ...row.env }
      await initOk(t, box, env)
      await expectExit(t, box, env, 'verify', 0)
      await row.add(box)
      const foreign = foreignOf(await snapshot(box))
      const devices = await tcSnapshot(box)
      const verified = await expectExit(t, box, env, 'verify', row.verify)
      if (row.names) t.match(verified, row.names(box), 'verify names the hook, where it is and why')
      await expectLanding(t, box, row.landing, 'with the foreign hook')
      if (row.tproxy) {
        // lo's own connections are still exempt: the app reaches itself on loopback, not the proxy.
        for (const host of ['127.0.0.1', '::1']) {
          const own = await box.connect('pod', host, 8080)
          t.equal(own.reply?.label, 'app', `pod -> ${host}:8080 (on lo, sent here) reaches the app`, { own })
        }
      }
      await expectExit(t, box, env, 'init', row.verify)
      if (row.accept) {
        const accepted = { ...env, ...(await row.accept(box)) }
        await expectExit(t, box, accepted, 'verify', 0)
        await expectExit(t, box, accepted, 'init', 0)
        await expectLanding(t, box, row.landing, 'accepted')
      }
      t.equal(foreignOf(await snapshot(box)), foreign, 'verify and init left the foreign rules byte-identical')
      t.equal(await tcSnapshot(box), devices, 'and the devices')
      await expectExit(t, box, env, 'clean', 0)
      t.equal(foreignOf(await snapshot(box)), foreign, 'clean left the foreign rules byte-identical')
      t.equal(await tcSnapshot(box), devices, 'and the devices')
    })
  }
}
