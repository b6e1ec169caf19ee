// The live probe of Istio's mode: real connections along Istio's paths, each expected to land where the plan's nat
// OUTPUT sends it (natOutputFate: the plan is read, never the configuration). The paths, per family:
// - the app's outbound to a non-local address (a documentation address, or one in the included ranges) lands on
//   the outbound port; the app's connections to its own pod address and to loopback land on their destination;
// - the proxy's connection to its own pod address lands on the inbound port (Istio's "proxy to self"); to the
//   tunnel port, from the passthrough source (127.0.0.6, ::6), and to loopback, on their destination; to the
//   127.0.0.6 (::6) probe port Istio's own validation dials, on the inbound port; its outbound is not captured.
// Local destinations are listeners of ours, so nothing leaves the pod when a rule is right or wrong. A non-local
// destination is the exception (as the DNS probe's nameserver is): when capture is broken the SYN goes out to a
// documentation address (RFC 5737, RFC 3849) or an included range, on a port of ours, and nothing answers it.
// Identities other than this process's need CAP_SETUID/CAP_SETGID (as in a test); Istio's init container lacks
// them, so there the proxy's paths are "not checked", and its validation container, which runs as the proxy,
// checks them.

import net from 'node:net'
import { networkInterfaces } from 'node:os'
import { originalDestination } from '../net/original-dst.js'
import { connectSocket, listenFd } from '../net/socket.js'
import type { FamilyPlan, Plan } from '../plan/types.js'
import { cidrRange, formatIpv6 } from '../settings/cidr.js'
import type { Cidr, Family } from '../settings/types.js'
import { messageOf } from '../text.js'
import { natOutputFate, type ProbePacket } from './fate.js'
import type { Check } from './probe.js'

/** A check, and whether the plan sends its connection to a redirect port (a pass then proves capture). */
export interface IstioCheck extends Check {
  readonly redirected: boolean
}

export interface Who {
  readonly uid: number
  readonly gid: number
}

export interface IstioProbeInput {
  readonly plan: Plan
  /** The identity the app's paths are made as (init: root), and the proxy's (its first UID and GID). */
  readonly app: Who | undefined
  readonly proxy: Who | undefined
  /** This process, for deciding which identities need no change of credentials. */
  readonly self: Who
  readonly inboundTunnelPort: number
  /** Istio's own validation port, dialled on 127.0.0.6 (::6). */
  readonly probePort: number
  /** How long a connection to a non-local address is watched for landing on one of our listeners. */
  readonly awayMs: number
}

// How long a connection that should land on a listener in this very process is waited for. It lands (or is refused)
// at once; the bound only ends a hang, and it is generous because a process descheduled on a loaded node runs its
// timers before the I/O that arrived meanwhile. Only a capture that is missing waits it out.
const LOCAL_MS = 3000

interface Path {
  readonly name: string
  readonly who: 'app' | 'proxy'
  readonly from?: string
  readonly to: string
  readonly port: number
  readonly local: boolean
}

type Landing =
  | { readonly on: 'listener'; readonly port: number; readonly originalDst: string | undefined }
  | { readonly on: 'away' }
  | { readonly on: 'nowhere'; readonly why: string }

const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.1', ipv6: '::1' }
const PASSTHROUGH: Record<Family, string> = { ipv4: '127.0.0.6', ipv6: '::6' }
// Documentation addresses (RFC 5737, RFC 3849): no real host has them.
const DOCUMENTATION: Record<Family, readonly string[]> = { ipv4: ['203.0.113.1', '198.51.100.1', '192.0.2.1'], ipv6: ['2001:db8:ffff::1'] }

/** The pod's global addresses of a family, and whether lo holds an address (::6 is put there for IPv6). */
const addressesOf = (family: Family): { pod: string | undefined; onLo: (a: string) => boolean } => {
  const all = Object.entries(networkInterfaces()).flatMap(([name, list]) => (list ?? []).map(i => ({ name, ...i })))
  const ofFamily = all.filter(i => i.family === (family === 'ipv4' ? 'IPv4' : 'IPv6'))
  const pod = ofFamily.find(i => !i.internal && !i.address.startsWith('169.254.') && !/^fe[89ab]/i.test(i.address))?.address
  return { pod, onLo: a => ofFamily.some(i => i.name === 'lo' && i.address === a) }
}

/** An address inside a range, not its network address (unless it is a host), to stand for a remote host there. */
const inside = (cidr: Cidr): string => {
  const [low, high] = cidrRange(cidr)
  const value = low === high ? low : low + 1n
  const size = cidr.family === 'ipv4' ? 4 : 16
  const bytes = [...Array(size)].map((_, i) => Number((value >> BigInt(8 * (size - 1 - i))) & 0xffn))
  return cidr.family === 'ipv4' ? bytes.join('.') : formatIpv6(bytes)
}

const packet = (path: Path, who: Who, pod: string): ProbePacket => ({
  saddr: path.from ?? (path.local ? (path.to.startsWith('127.') ? '127.0.0.1' : path.to) : pod),
  daddr: path.to,
  dport: path.port,
  uid: who.uid,
  gid: who.gid,
  mark: 0,
  classid: 0,
  outInterface: path.local ? 'lo' : 'away',
  protocol: 'tcp',
})

/** A remote address the plan redirects for `who` on `port`, or undefined. */
const remoteTarget = (plan: FamilyPlan, who: Who, port: number, pod: string): string | undefined => {
  const includes = plan.chains
    .flatMap(c => c.rules)
    .filter(r => r.target.kind === 'redirect')
    .flatMap(r => r.matches.flatMap(m => (m.kind === 'destination' && !m.cidr.address.startsWith('127.') ? [inside(m.cidr)] : [])))
  const candidates = [...DOCUMENTATION[plan.family], ...includes]
  return candidates.find(to => natOutputFate(plan, packet({ name: '', who: 'app', to, port, local: false }, who, pod)).kind === 'redirect')
}

// The live probe's socket helpers, loaded as init loads them (probe.ts stays a chunk of its own, reached only
// lazily: a static import here would fold it into a chunk shared with this command).
type ProbeModule = typeof import('./probe.js')
let probe: ProbeModule | undefined
const bracket = (host: string): string => (host.includes(':') ? `[${host}]` : host)

/** A listener on the port (0: a free one) that answers with its port and SO_ORIGINAL_DST; undefined when taken. */
const listen = (family: Family, port: number): Promise<net.Server | undefined> =>
  new Promise(resolve => {
    const server = net.createServer(s => {
      // A client that gave up resets its connection: what it saw is its answer, not an error of this process.
      s.on('error', () => s.destroy())
      const dst = originalDestination(s)
      s.end(`${s.localPort} ${dst ? `${bracket(dst.address)}:${dst.port}` : '-'}\n`)
    })
    server.once('error', () => resolve(undefined))
    try {
      server.listen({ fd: listenFd(family, port) }, () => resolve(server))
    } catch {
      resolve(undefined)
    }
  })

const portOf = (server: net.Server): number => (server.address() as net.AddressInfo).port

const connectAs = (path: Path, who: Who, self: Who): net.Socket => {
  const options = path.from === undefined ? {} : { from: path.from }
  return who.uid === self.uid && who.gid === self.gid
    ? connectSocket(path.to, path.port, options)
    : probe!.socketAs(path.to, path.port, who.uid, who.gid, options)
}

/** Where one connection lands: on a listener of ours (which reports its port and SO_ORIGINAL_DST), away, or nowhere. */
const land = (connect: () => net.Socket, local: boolean, captured: boolean, awayMs: number): Promise<Landing> =>
  new Promise((resolve, reject) => {
    let socket: net.Socket
    try {
      socket = connect()
    } catch (error) {
      if (error instanceof probe!.CannotAssume) return reject(error)
      // Route lookup comes before nat: with no route to a remote address, nothing can be said of its capture.
      return resolve({ on: 'nowhere', why: messageOf(error) })
    }
    let text = ''
    const done = (landing: Landing): void => {
      socket.destroy()
      resolve(landing)
    }
    // A connection to an address outside the pod that no listener of ours took within the wait was not captured.
    // One expected on a listener of ours gets the local wait: it lands at once when it is captured.
    const timeout = (): void => done(local ? { on: 'nowhere', why: `no answer within ${LOCAL_MS} ms` } : { on: 'away' })
    socket.setTimeout(local || captured ? LOCAL_MS : awayMs, timeout)
    socket.on('data', chunk => (text += String(chunk)))
    socket.on('end', () => {
      const [port, dst] = text.trim().split(' ')
      done(
        /^\d+$/.test(port ?? '')
          ? { on: 'listener', port: Number(port), originalDst: dst === '-' ? undefined : dst }
          : local
            ? { on: 'nowhere', why: `unexpected answer "${text.trim()}"` }
            : { on: 'away' },
      )
    })
    socket.on('error', error => done(local ? { on: 'nowhere', why: error.message } : { on: 'away' }))
  })

const describe = (landing: Landing, captures: ReadonlySet<number>): string =>
  landing.on === 'listener'
    ? captures.has(landing.port) && landing.originalDst
      ? `port ${landing.port} (SO_ORIGINAL_DST ${landing.originalDst})`
      : 'its destination'
    : landing.on === 'away'
      ? 'none of our listeners (not captured)'
      : `nowhere: ${landing.why}`

/** Runs one family's paths. */
const probeFamily = async (plan: FamilyPlan, input: IstioProbeInput): Promise<IstioCheck[]> => {
  const family = plan.family
  const checks: IstioCheck[] = []
  const skip = (name: string, detail: string): void => void checks.push({ name, family, status: 'not checked', detail, redirected: false })
  const { pod, onLo } = addressesOf(family)
  if (!pod) {
    skip('paths', 'the pod has no global address of this family')
    return checks
  }
  const direct = await listen(family, 0)
  if (!direct) {
    skip('paths', 'no free port to listen on')
    return checks
  }
  const D = portOf(direct)
  const paths: Path[] = []
  if (input.app) {
    const remote = remoteTarget(plan, input.app, D, pod)
    if (remote) paths.push({ name: 'app-outbound', who: 'app', to: remote, port: D, local: false })
    else skip('app-outbound', 'the plan redirects no outbound address of this family for the app')
    paths.push(
      { name: 'app-to-pod', who: 'app', to: pod, port: D, local: true },
      { name: 'app-loopback', who: 'app', to: LOOPBACK[family], port: D, local: true },
    )
  }
  if (input.proxy) {
    paths.push(
      { name: 'proxy-to-self', who: 'proxy', to: pod, port: D, local: true },
      { name: 'proxy-tunnel-port', who: 'proxy', to: pod, port: input.inboundTunnelPort, local: true },
      { name: 'proxy-loopback', who: 'proxy', to: LOOPBACK[family], port: D, local: true },
    )
    if (onLo(PASSTHROUGH[family]) || family === 'ipv4') {
      paths.push(
        { name: 'proxy-passthrough', who: 'proxy', from: PASSTHROUGH[family], to: pod, port: D, local: true },
        { name: 'istio-validation', who: 'proxy', from: LOOPBACK[family], to: PASSTHROUGH[family], port: input.probePort, local: true },
      )
    } else skip('proxy-passthrough', `${PASSTHROUGH[family]} is not on lo`)
    paths.push({ name: 'proxy-outbound', who: 'proxy', to: DOCUMENTATION[family][0]!, port: D, local: false })
  }
  // Listeners: the ports the plan redirects these paths to, and the tunnel port (its path's destination).
  const expected = paths.map(path => {
    const who = (path.who === 'app' ? input.app : input.proxy)!
    return { path, who, fate: natOutputFate(plan, packet(path, who, pod)) }
  })
  const captures = new Set(expected.flatMap(e => (e.fate.kind === 'redirect' ? [e.fate.port] : [])))
  const servers = new Map<number, net.Server | undefined>()
  for (const port of [...captures, ...(paths.some(p => p.port === input.inboundTunnelPort) ? [input.inboundTunnelPort] : [])]) {
    if (!servers.has(port)) servers.set(port, await listen(family, port))
  }
  try {
    for (const { path, who, fate } of expected) {
      const listener = fate.kind === 'redirect' ? fate.port : path.local ? path.port : undefined
      if (listener !== undefined && listener !== D && !servers.get(listener)) {
        skip(path.name, `port ${listener} is in use (is the proxy already running?)`)
        continue
      }
      let landing: Landing
      try {
        landing = await land(() => connectAs(path, who, input.self), path.local, fate.kind === 'redirect', input.awayMs)
      } catch (error) {
        skip(path.name, messageOf(error))
        continue
      }
      if (!path.local && landing.on === 'nowhere') {
        skip(path.name, `cannot reach ${bracket(path.to)} (${landing.why}): the route is looked up before capture`)
        continue
      }
      const dst = `${bracket(path.to)}:${path.port}`
      const ok =
        fate.kind === 'redirect'
          ? landing.on === 'listener' && landing.port === fate.port && landing.originalDst === dst
          : path.local
            ? landing.on === 'listener' && landing.port === path.port && landing.originalDst === undefined
            : landing.on === 'away'
      const want = fate.kind === 'redirect' ? `port ${fate.port}` : path.local ? 'its destination' : 'no listener of ours'
      const by = `${path.who} uid ${who.uid} gid ${who.gid}${path.from ? ` from ${path.from}` : ''}`
      checks.push({
        name: path.name,
        family,
        status: ok ? 'passed' : 'failed',
        detail: `${by} -> ${dst} reached ${describe(landing, captures)}${ok ? '' : `, not ${want}`}`,
        redirected: fate.kind === 'redirect',
      })
    }
  } finally {
    await Promise.all([direct, ...servers.values()].map(s => s && new Promise(r => s.close(r))))
  }
  return checks
}

/** A check that proved capture: it was expected on a redirect port and landed there. */
export const provesCapture = (check: IstioCheck): boolean => check.status === 'passed' && check.redirected

/** probeIstioPaths runs every family's paths, one family after the other (they share listener ports). */
export const probeIstioPaths = async (input: IstioProbeInput): Promise<IstioCheck[]> => {
  probe ??= await import('./probe.js')
  const checks: IstioCheck[] = []
  for (const family of input.plan.families) checks.push(...(await probeFamily(family, input)))
  return checks
}
