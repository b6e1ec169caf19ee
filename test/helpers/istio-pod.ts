// A pod for Istio's mode, as Istio's tests picture one: its main interface eth0 to a remote host (with more
// addresses in ranges the configurations include or exclude), and three more interfaces, eth1, eth2 and
// not-istio-nic, each to a host of its own (KubeVirt's VM side, another network, an interface Istio is told to
// leave alone). The pod forwards, as a KubeVirt pod does, so a VM's traffic Istio does not capture reaches the
// remote. Every namespace is this run's own and goes at teardown. Test addresses only (198.18.0.0/15, 2001:db8::/32).
import { rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import type { Sandbox } from '../../src/sandbox/sandbox.js'
import { realExec } from '../../src/exec/exec.js'
import { runForStatus, startProcess, type Status } from '../../src/exec/processes.js'
import { programs, withSandbox } from './kernel.js'
import { untapped } from './processes.js'

export type Family = 'ipv4' | 'ipv6'
export type Host = 'pod' | 'remote' | 'side1' | 'side2' | 'side3'

/** The hosts' addresses by family. */
export const ADDR = {
  pod: { ipv4: '198.18.0.1', ipv6: '2001:db8::1' },
  remote: { ipv4: '198.18.0.2', ipv6: '2001:db8::2' },
  // The pod's own end of each side link, and the side host on it.
  podSide1: { ipv4: '198.18.1.1', ipv6: '2001:db8:1::1' },
  side1: { ipv4: '198.18.1.2', ipv6: '2001:db8:1::2' },
  podSide2: { ipv4: '198.18.2.1', ipv6: '2001:db8:2::1' },
  side2: { ipv4: '198.18.2.2', ipv6: '2001:db8:2::2' },
  podSide3: { ipv4: '198.18.3.1', ipv6: '2001:db8:3::1' },
  side3: { ipv4: '198.18.3.2', ipv6: '2001:db8:3::2' },
} as const

// Istio's tests name 1.1.0.0/16, 9.9.0.0/16 and 10.0.0.0/8; here they are test ranges, each with one remote host.
export const EXCLUDED = { cidr: '198.19.1.0/24', host: '198.19.1.1' }
export const INCLUDED = { cidr: '198.19.9.0/24', host: '198.19.9.1' }
export const NET10 = { cidr: '198.19.10.0/24', host: '198.19.10.1' }

export const SIDES = [
  { host: 'side1', link: 'eth1', pod: ADDR.podSide1, peer: ADDR.side1 },
  { host: 'side2', link: 'eth2', pod: ADDR.podSide2, peer: ADDR.side2 },
  { host: 'side3', link: 'not-istio-nic', pod: ADDR.podSide3, peer: ADDR.side3 },
] as const

/** Ports the pod's app listens on (each `app-<port>`), and the remote's and sides' (`remote-<port>`, `sideN-<port>`). */
export const POD_PORTS = [53, 1111, 2222, 3333, 4000, 5000, 6000, 8080, 15020, 15021, 15090, 31000, 32000] as const
export const REMOTE_PORTS = [53, 5555, 9090, 15020, 31000] as const

export interface IstioPod {
  readonly box: Sandbox
  /** Runs a command in a host's namespace. */
  exec(where: Host, file: string, args: readonly string[]): Promise<Status>
  /** Runs `entrypoint <args>` in the pod, with /etc/resolv.conf and /etc/group as given (a private mount namespace). */
  entrypoint(args: readonly string[], files: { resolvConf: string; group: string }, env?: Record<string, string>): Promise<Status>
  /** Connects from a host as uid/gid (root when undefined) to each target; one reply line per target. */
  connectMany(where: Host, targets: readonly string[], as?: { uid: number; gid: number }): Promise<Record<string, unknown>[]>
}

const NS_OF = (box: Sandbox, host: Host): string =>
  host === 'pod' ? box.podNs : host === 'remote' ? box.remoteNs : `${box.podNs.replace(/-pod$/, '')}-${host}`

const inNs = (ns: string, file: string, args: readonly string[]): [string, string[]] => [
  'nsenter',
  [`--net=/run/netns/${ns}`, '--wd=/', ...untapped(file, ...args)],
]

/** Builds the pod; everything goes when the test ends. */
export const withIstioPod = async (t: Test): Promise<IstioPod> => {
  const box = await withSandbox(t, { pod: ADDR.pod.ipv4, remote: ADDR.remote.ipv4, pod6: ADDR.pod.ipv6, remote6: ADDR.remote.ipv6 })
  const ns = (host: Host): string => NS_OF(box, host)
  const run = async (host: Host, file: string, args: readonly string[]): Promise<void> => {
    const status = await runForStatus(...inNs(ns(host), file, args))
    if (status.exitCode !== 0) throw new Error(`${host}: ${file} ${args.join(' ')}: ${status.output}`)
  }
  const sides = SIDES.map(s => s.host)
  t.teardown(async () => {
    for (const host of sides) await realExec('ip', ['netns', 'delete', ns(host)]).catch(() => undefined)
  })
  // The pod's main link is eth0, as in a pod; the remote routes the side networks back through the pod.
  const podLink = (await box.exec('pod', 'ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout.split(':')[1]?.trim().split('@')[0] ?? ''
  await run('pod', 'ip', ['link', 'set', podLink, 'down'])
  await run('pod', 'ip', ['link', 'set', podLink, 'name', 'eth0'])
  await run('pod', 'ip', ['link', 'set', 'eth0', 'up'])
  // Down takes a link's IPv6 addresses with it.
  await run('pod', 'ip', ['addr', 'replace', `${ADDR.pod.ipv6}/64`, 'dev', 'eth0', 'nodad'])
  await run('pod', 'ip', ['route', 'add', 'default', 'via', ADDR.remote.ipv4])
  await run('pod', 'ip', ['-6', 'route', 'add', 'default', 'via', ADDR.remote.ipv6])
  for (const f of ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']) await run('pod', 'sysctl', ['-qw', f])
  const remoteLink = (await box.exec('remote', 'ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout.split(':')[1]?.trim().split('@')[0] ?? ''
  for (const extra of [EXCLUDED.host, INCLUDED.host, NET10.host]) await run('remote', 'ip', ['addr', 'add', `${extra}/32`, 'dev', remoteLink])
  await run('remote', 'ip', ['route', 'add', 'default', 'via', ADDR.pod.ipv4])
  await run('remote', 'ip', ['-6', 'route', 'add', 'default', 'via', ADDR.pod.ipv6])
  for (const side of SIDES) {
    await realExec('ip', ['netns', 'add', ns(side.host)])
    await run(side.host, 'ip', ['link', 'set', 'lo', 'up'])
    // Made inside the pod, so its name is the pod's alone; the peer goes straight to the side host.
    await run('pod', 'ip', ['link', 'add', side.link, 'type', 'veth', 'peer', 'name', 'peer0', 'netns', ns(side.host)])
    await run('pod', 'ip', ['addr', 'add', `${side.pod.ipv4}/24`, 'dev', side.link])
    await run('pod', 'ip', ['addr', 'add', `${side.pod.ipv6}/64`, 'dev', side.link, 'nodad'])
    await run('pod', 'ip', ['link', 'set', side.link, 'up'])
    await run(side.host, 'ip', ['addr', 'add', `${side.peer.ipv4}/24`, 'dev', 'peer0'])
    await run(side.host, 'ip', ['addr', 'add', `${side.peer.ipv6}/64`, 'dev', 'peer0', 'nodad'])
    await run(side.host, 'ip', ['link', 'set', 'peer0', 'up'])
    await run(side.host, 'ip', ['route', 'add', 'default', 'via', side.pod.ipv4])
    await run(side.host, 'ip', ['-6', 'route', 'add', 'default', 'via', side.pod.ipv6])
  }
  // The kernel gives each link its IPv6 link-local address once it has carrier (from a work queue, up to a second
  // later), with its routes (an anycast one too, as the pod forwards), after duplicate address detection: a
  // snapshot taken before that differs from one taken after. Wait for all of it.
  const links = ['eth0', ...SIDES.map(s => s.link)]
  for (const started = Date.now(); ; ) {
    const routes = (await box.exec('pod', 'ip', ['-6', 'route', 'show', 'table', 'local'])).stdout
    const tentative = (await box.exec('pod', 'ip', ['-6', 'addr', 'show', 'tentative'])).stdout.trim()
    if (links.every(link => routes.includes(`anycast fe80:: dev ${link} `)) && tentative === '') break
    if (Date.now() - started > 30_000) throw new Error(`the pod's IPv6 link-local set-up did not settle:\n${routes}\n${tentative}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const { peer, cli } = programs()
  const serve = async (host: Host, specs: readonly string[], transparent = false): Promise<void> => {
    const args = [peer, 'serve', ...(transparent ? ['--transparent'] : []), ...specs]
    const child = startProcess(...inNs(ns(host), process.execPath, args))
    t.teardown(() => child.stop())
    await child.waitForLine(line => line.includes('"ready"'))
  }
  await serve('pod', ['proxy=[::]:15001', 'dns=[::]:15053', 'tunnel=[::]:15008', ...POD_PORTS.map(p => `app-${p}=[::]:${p}`)])
  // The inbound port takes TPROXY's diverted connections too, so it listens transparently, as Envoy's does.
  await serve('pod', ['inbound=:15006'], true)
  await serve(
    'remote',
    REMOTE_PORTS.map(p => `remote-${p}=[::]:${p}`),
  )
  for (const side of SIDES) await serve(side.host, [`${side.host}-9090=[::]:9090`])
  const dir = tmpdir()
  return {
    box,
    exec: (where, file, args) => runForStatus(...inNs(ns(where), file, args)),
    entrypoint: async (args, files, env = {}) => {
      const id = `${process.pid}-${Math.random().toString(36).slice(2)}`
      const resolv = `${dir}/sr-istio-resolv-${id}`
      const group = `${dir}/sr-istio-group-${id}`
      writeFileSync(resolv, files.resolvConf)
      writeFileSync(group, files.group)
      const script = 'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/group && shift 2 && exec "$@"'
      try {
        return await runForStatus(
          ...inNs(ns('pod'), 'unshare', ['--mount', 'sh', '-c', script, 'sh', resolv, group, process.execPath, cli, ...args]),
          {
            ...process.env,
            ...env,
          },
        )
      } finally {
        rmSync(resolv, { force: true })
        rmSync(group, { force: true })
      }
    },
    connectMany: async (where, targets, as) => {
      const drop = as === undefined ? [] : ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups']
      // Every cell expects an answer, so the bound costs nothing when connections land; 10 s outlasts two lost SYNs
      // (resent after 1 and 3 s), which at 3 s failed a direct cell once in a CI run with no load beside it.
      const argv = [...drop, process.execPath, peer, 'connect-many', '--timeout', '10000', ...targets]
      const status = await runForStatus(...inNs(ns(where), argv[0]!, argv.slice(1)))
      return status.output
        .split('\n')
        .filter(l => l.startsWith('{'))
        .map(l => JSON.parse(l) as Record<string, unknown>)
    },
  }
}
