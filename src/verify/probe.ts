// The live probe: read-back proves the rules are there, this proves they work. Everything stays inside the pod:
// the probe listens on the proxy port and on a free "direct" port, then connects to one of the pod's own
// addresses on the direct port with sockets made under each identity. A captured connection lands on the proxy
// port with SO_ORIGINAL_DST naming the direct port; a bypassing one lands on the direct port. No packet can leave
// the pod even if a rule is wrong: the destination is always local.

import dgram from 'node:dgram'
import type net from 'node:net'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import { loadLibc } from '../net/libc.js'
import { connectSocket, type SocketOptions } from '../net/socket.js'
import { enterNetClsGroup, hasNetClsGroup, joinGroup, netClsMount, netClsPath, removeNetClsGroup } from '../cgroup/net-cls.js'
import { DNS_CHAIN, OUTBOUND_CHAIN } from '../plan/owned.js'
import type { FamilyPlan, Plan } from '../plan/types.js'
import type { Family } from '../settings/types.js'
import { hex, messageOf } from '../text.js'
import { fateOf, identityBypasses, type IdentityMatch, type ProbePacket } from './fate.js'
import {
  bracket,
  CannotAssume,
  type Check,
  closeAll,
  type Identity,
  land,
  openDirect,
  openProxy,
  TIMEOUT_MS,
  where,
  type Landing,
} from './landing.js'

// CannotAssume too: Istio's probe (istio-probe.ts) loads this module lazily and tells that refusal apart.
export { CannotAssume, type Check, type Identity } from './landing.js'

const NOBODY = 65534

/** A connection made by `uid` (root stands for the app in init) to one of the pod's addresses, leaving by lo. */
const appPacket = (address: string, port: number, uid = 0, gid = uid): ProbePacket => ({
  saddr: address,
  daddr: address,
  dport: port,
  uid,
  gid,
  mark: 0,
  classid: 0,
  outInterface: 'lo',
})

// The app stands as this process is: root in an init container, or a non-root init's own UID (one given only
// NET_ADMIN and NET_RAW, which cannot take any other identity).
const self = (): Identity => ({ uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 })

export interface Target {
  readonly address: string
  /** The port the plan redirects it to: where the probe's proxy listener goes. */
  readonly proxyPort: number
}

/**
 * pickTarget chooses one of the pod's own (non-link-local) addresses that the plan redirects on `port`, reading
 * the plan's OUTPUT chain, never the settings; or says why there is none (the probe never dials out of the pod). Pure.
 */
export const pickTarget = (
  plan: FamilyPlan,
  addresses: readonly string[],
  port: number,
  as: Identity = self(),
): Target | { readonly none: string } => {
  let why = plan.chains.some(c => c.name === OUTBOUND_CHAIN && c.rules.some(r => r.matches.some(m => m.kind === 'service-set')))
    ? 'no address of this pod is a listed service without a port (the read-back covers the sets)'
    : 'no address of this pod is in the capture scope'
  for (const address of addresses.filter(a => plan.family === 'ipv4' || !a.startsWith('fe80:'))) {
    const fate = fateOf(plan, appPacket(address, port, as.uid, as.gid))
    if (fate.kind === 'redirect') return { address, proxyPort: fate.port }
    const lo = fate.kind === 'return' && fate.rule.matches.some(m => m.kind === 'out-interface' && m.name === 'lo')
    if (lo) why = 'ISTIO_EXCLUDE_INTERFACES leaves lo alone, and every probe connection stays in the pod on lo'
  }
  return { none: why }
}

const localAddresses = (family: Family): string[] =>
  Object.values(networkInterfaces())
    .flat()
    .filter((i): i is NetworkInterfaceInfo => !!i && !i.internal && i.family === (family === 'ipv4' ? 'IPv4' : 'IPv6'))
    .map(i => i.address)

/** Connects a socket whose credentials are `uid`/`gid`: the owner match reads the credentials it was created with. */
export const socketAs = (host: string, port: number, uid: number, gid: number, options: SocketOptions = {}): net.Socket => {
  // Load the FFI while still root: under the other identity its files may not be readable.
  loadLibc()
  // Both exist on Linux; Node types them optional because Windows lacks them. glibc applies them to every thread.
  const { setegid, seteuid, getegid, geteuid } = process as Required<NodeJS.Process>
  const [ownUid, ownGid] = [geteuid(), getegid()]
  try {
    setegid(gid)
    seteuid(uid)
  } catch (error) {
    setegid(ownGid)
    throw new CannotAssume(`cannot act as uid ${uid} gid ${gid} (${messageOf(error)}): give init CAP_SETUID and CAP_SETGID to probe this`)
  }
  try {
    return connectSocket(host, port, options)
  } finally {
    seteuid(ownUid)
    setegid(ownGid)
  }
}

/** A connection to host:port, made as the check needs. */
type Connect = (host: string, port: number) => net.Socket
type Expect = (name: string, socket: Connect, want: 'proxy' | 'direct', who: string) => Promise<void>
type Skip = (name: string, detail: string) => void

interface BypassContext {
  readonly address: string
  readonly appUid: number
  readonly name: string
  readonly expect: Expect
  readonly skip: Skip
}

// One prober per identity a plan can exempt the proxy by. A Record, so a new identity kind needs its probe.
const BYPASS: { readonly [K in IdentityMatch['kind']]: (m: Extract<IdentityMatch, { kind: K }>, c: BypassContext) => Promise<void> } = {
  'uid-owner': (m, c) => c.expect(c.name, (host, port) => socketAs(host, port, m.uid, m.uid), 'direct', `proxy uid ${m.uid}`),
  'gid-owner': (m, c) => c.expect(c.name, (host, port) => socketAs(host, port, c.appUid, m.gid), 'direct', `gid ${m.gid}`),
  // As root: leaving euid 0 would drop CAP_NET_ADMIN, which SO_MARK needs; root is not exempt by itself here.
  mark: (m, c) =>
    c.expect(
      c.name,
      (host, port) => connectSocket(host, port, { mark: m.mark.value }),
      'direct',
      `uid ${self().uid} with SO_MARK ${hex(m.mark.value)}`,
    ),
  cgroup: async (m, c) => {
    const root = await netClsMount()
    if (!root) return c.skip(c.name, 'the net_cls hierarchy is not mounted in this container')
    const home = ((await netClsPath('self')) ?? '/').replace(/\/$/, '')
    // The same group the agent will use, made here if need be so init can probe before the proxy exists; a group
    // made here goes again afterwards (the agent makes its own when it starts): run from the node (CNI mode), the
    // hierarchy is the node's, and nothing of a probe may stay there.
    const made = !(await hasNetClsGroup(root, m.classid))
    try {
      try {
        await enterNetClsGroup(root, m.classid, process.pid)
      } catch (error) {
        return c.skip(c.name, `could not join a net_cls group with classid ${hex(m.classid)}: ${messageOf(error)}`)
      }
      // The classid is taken when the socket is made; moving back afterwards re-labels our sockets, so the
      // connection is made and answered before leaving the group.
      try {
        await c.expect(c.name, connectSocket, 'direct', `uid ${self().uid} in net_cls classid ${hex(m.classid)}`)
      } finally {
        await joinGroup(`${root}${home}`, process.pid)
      }
    } finally {
      if (made) await removeNetClsGroup(root, m.classid)
    }
  },
}

const portOf = (server: net.Server): number => (server.address() as net.AddressInfo).port

// The DNS checks (ISTIO_DNS_CAPTURE). They ask the nameserver the plan captures, so they are the one exception to
// "the destination is always local": with `all` they ask one of the pod's own addresses, but with resolv-conf the
// nameserver is usually outside the pod, and if capture is broken the query reaches it. So the query is a real,
// harmless one: an A query for a name under `.invalid`, which no nameserver resolves (RFC 6761).
const PROBE_NAME = 'sidecar-redirect-probe.invalid'

const dnsQuery = (id: number): Buffer => {
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])
  const name = PROBE_NAME.split('.').flatMap(label => [Buffer.from([label.length]), Buffer.from(label)])
  return Buffer.concat([header, ...name, Buffer.from([0, 0, 1, 0, 1])])
}

/** What the plan's DNS chain sends where: the nameserver to ask (undefined: any address) and the DNS port. */
const dnsTarget = (plan: FamilyPlan, protocol: 'udp' | 'tcp'): { readonly ns: string | undefined; readonly port: number } | undefined => {
  const rule = plan.chains.find(c => c.name === DNS_CHAIN)?.rules.find(r => r.protocol === protocol && r.target.kind === 'redirect')
  if (rule?.target.kind !== 'redirect') return undefined
  const ns = rule.matches.find(m => m.kind === 'destination')
  return { ns: ns?.kind === 'destination' ? ns.cidr.address : undefined, port: rule.target.port }
}

type DnsAnswer = { readonly heard: boolean; readonly from?: dgram.RemoteInfo; readonly why?: string }

/**
 * One UDP query from an app socket to `ns`:53, with a stand-in for the proxy's DNS server on the DNS port (on the
 * loopback address REDIRECT sends to), which answers it: the answer must come back from `ns`:53, as the app's
 * resolver requires. Resolves undefined when the DNS port is taken.
 */
const askOverUdp = (family: Family, ns: string, port: number): Promise<DnsAnswer | undefined> =>
  new Promise(resolve => {
    const type = family === 'ipv4' ? 'udp4' : 'udp6'
    const server = dgram.createSocket(type)
    const app = dgram.createSocket(type)
    let heard = false
    const finish = (answer: DnsAnswer | undefined): void => {
      clearTimeout(timer)
      server.close()
      app.close()
      resolve(answer)
    }
    const timer = setTimeout(() => finish({ heard, why: `no answer within ${TIMEOUT_MS} ms` }), TIMEOUT_MS)
    server.once('error', () => finish(undefined))
    server.on('message', (query, rinfo) => {
      heard = true
      const answer = Buffer.from(query)
      answer[2] = 0x81 // a response, recursion desired
      answer[3] = 0x85 // recursion available, REFUSED: this server answers nothing
      server.send(answer, rinfo.port, rinfo.address)
    })
    app.on('message', (_answer, from) => finish({ heard, from }))
    app.on('error', error => finish({ heard, why: error.message }))
    server.bind({ port, address: family === 'ipv4' ? '127.0.0.1' : '::1' }, () => app.send(dnsQuery(0x5352), 53, ns))
  })

/** The DNS checks of one family: UDP answered from the nameserver's address, TCP landing on the DNS port. */
const probeDns = async (plan: FamilyPlan, who: string): Promise<Check[]> => {
  const [udp, tcp] = [dnsTarget(plan, 'udp'), dnsTarget(plan, 'tcp')]
  if (!udp || !tcp) return []
  const family = plan.family
  const ns = udp.ns ?? localAddresses(family)[0]
  const check = (name: string, status: Check['status'], detail: string): Check => ({ name, family, status, detail })
  if (ns === undefined) return ['dns', 'dns-tcp'].map(name => check(name, 'not checked', 'the pod has no address of this family to ask'))
  const to = `${bracket(ns)}:53`
  const checks: Check[] = []
  const answer = await askOverUdp(family, ns, udp.port)
  if (!answer) checks.push(check('dns', 'not checked', `UDP port ${udp.port} is in use (is the proxy's DNS server already running?)`))
  else {
    const from = answer.from && `${bracket(answer.from.address)}:${answer.from.port}`
    const ok = answer.heard && from === to
    const seen = !answer.heard ? `the query never reached the DNS port ${udp.port}` : from ? `answered from ${from}` : `no answer (${answer.why})`
    checks.push(
      check('dns', ok ? 'passed' : 'failed', `${who} -> ${to} (UDP) ${ok ? `reached the DNS port ${udp.port}, answered from ${to}` : seen}`),
    )
  }
  const server = await openProxy(family, tcp.port)
  if (!server) checks.push(check('dns-tcp', 'not checked', `TCP port ${tcp.port} is in use (is the proxy's DNS server already running?)`))
  else {
    const landing = await land(() => connectSocket(ns, 53))
    await closeAll([server])
    const ok = landing.on === 'proxy' && landing.originalDst === to
    checks.push(check('dns-tcp', ok ? 'passed' : 'failed', `${who} -> ${to} (TCP) reached ${where(landing, `the DNS port ${tcp.port}`)}`))
  }
  return checks
}

/**
 * probeFamily runs one family's checks, with listeners of its own, from what that family's plan says. `only` = 'capture' is the unprivileged form (validate): the app's own
 * connection as this process is, no other identity taken.
 */
const probeFamily = async (plan: FamilyPlan, appUid: number, only?: { readonly capture: Identity }): Promise<Check[]> => {
  const family = plan.family
  const as = only?.capture ?? self()
  // This process stands for the app: only the proxy's identity is exempt, and root needs no other identity to probe.
  const who = only ? `uid ${as.uid} (this process, an app identity)` : `uid ${as.uid} (an app identity)`
  const checks: Check[] = await probeDns(plan, who)
  const skip: Skip = (name, detail) => void checks.push({ name, family, status: 'not checked', detail })
  // A direct port the plan captures: a free port it happens to exclude is swapped for another.
  let direct = await openDirect(family)
  let target = pickTarget(plan, localAddresses(family), portOf(direct), as)
  for (let tries = 0; 'none' in target && tries < 3; tries++) {
    const next = await openDirect(family)
    direct.close()
    direct = next
    target = pickTarget(plan, localAddresses(family), portOf(direct), as)
  }
  if ('none' in target) {
    direct.close()
    for (const name of only ? ['capture'] : ['capture', 'bypass', 'loopback']) skip(name, target.none)
    return checks
  }
  const { address } = target
  const directPort = portOf(direct)
  const proxy = await openProxy(family, target.proxyPort)
  const expect = async (name: string, connect: Connect, want: 'proxy' | 'direct', who: string, host = address): Promise<void> => {
    let landing: Landing
    try {
      landing = await land(() => connect(host, directPort))
    } catch (error) {
      if (error instanceof CannotAssume) return skip(name, error.message)
      landing = { on: 'nowhere', why: messageOf(error) }
    }
    const wantedDst = `${bracket(host)}:${directPort}`
    const ok = landing.on === want && (landing.on !== 'proxy' || landing.originalDst === wantedDst)
    checks.push({
      name,
      family,
      status: ok ? 'passed' : 'failed',
      detail: `${who} -> ${bracket(host)}:${directPort} reached ${where(landing, 'the proxy port')}`,
    })
  }
  try {
    if (proxy) await expect('capture', connectSocket, 'proxy', who)
    else skip('capture', `port ${target.proxyPort} is in use (is the proxy already running?)`)
    if (only) return checks
    for (const { rule, match } of identityBypasses(plan)) {
      const context: BypassContext = { address, appUid, name: rule.purpose === 'proxy-gid' ? 'bypass-gid' : 'bypass', expect, skip }
      await (BYPASS[match.kind] as (m: IdentityMatch, c: BypassContext) => Promise<void>)(match, context)
    }
    const loopback = family === 'ipv4' ? '127.0.0.1' : '::1'
    await expect('loopback', connectSocket, 'direct', `uid ${as.uid} from ${loopback}`, loopback)
  } finally {
    await closeAll([direct, proxy])
  }
  return checks
}

/**
 * probeCapture runs the live checks for each family of the plan and reports each one; it never throws for a
 * failed check (the caller decides). Needs root in the pod's network namespace, as init has. Families run side by
 * side, except where the plan exempts a net_cls classid: that bypass check moves this whole process into the
 * group for a moment, which would classify the other family's app sockets too.
 */
export const probeCapture = async (plan: Plan): Promise<Check[]> => {
  const exempt = plan.families.flatMap(identityBypasses).map(b => b.match)
  const isExempt = (uid: number): boolean => exempt.some(m => (m.kind === 'uid-owner' && m.uid === uid) || (m.kind === 'gid-owner' && m.gid === uid))
  const appUid = [NOBODY, NOBODY - 1].find(u => !isExempt(u)) ?? NOBODY
  if (!exempt.some(m => m.kind === 'cgroup')) return (await Promise.all(plan.families.map(f => probeFamily(f, appUid)))).flat()
  const checks: Check[] = []
  for (const family of plan.families) checks.push(...(await probeFamily(family, appUid)))
  return checks
}

const hasInboundCapture = (plan: FamilyPlan): boolean =>
  plan.chains.some(c => c.hook === 'PREROUTING' && c.rules.some(r => r.target.kind === 'redirect' || r.target.kind === 'tproxy'))

// What validate cannot show, said where it reports: it does not pretend to have checked inbound.
const INBOUND_UNPROVEN =
  'not proven from inside the pod: no unprivileged process can make a packet arrive on an interface of its own pod; inbound capture rests on the exact read-back of these same rules by whoever applied them (init, or the node at CNI ADD)'

/**
 * probeAppCapture is the unprivileged live check (validate): per family, a connection made by this process, as it
 * is, to one of the pod's addresses, then to destinations routed out of each interface (see reach.ts), must land
 * on the port the plan redirects to, with the right SO_ORIGINAL_DST. Inbound is reported as not checked.
 */
export const probeAppCapture = async (plan: Plan, as: Identity): Promise<Check[]> => {
  const { probeReach } = await import('./reach.js')
  const perFamily = await Promise.all(
    plan.families.map(async f => {
      const local = await probeFamily(f, as.uid, { capture: as })
      const reach = await probeReach(f, as, `uid ${as.uid} (this process, an app identity)`)
      const inbound: Check[] = hasInboundCapture(f) ? [{ name: 'inbound', family: f.family, status: 'not checked', detail: INBOUND_UNPROVEN }] : []
      return [...local, ...reach, ...inbound]
    }),
  )
  return perFamily.flat()
}

/**
 * probeProxyBypass is `run`'s check before it starts the proxy, made by this process as the proxy's identity (and
 * with the plan's mark, where the plan exempts by mark): per family, one connection to one of the pod's addresses,
 * on a port the plan redirects an app's connection from, must reach its destination. If the kernel redirects it
 * (a UID the kernel reads otherwise, as in a user-namespaced pod programmed from outside), the proxy would capture
 * its own traffic and loop.
 */
export const probeProxyBypass = (plan: Plan, as: Identity): Promise<Check[]> =>
  Promise.all(
    plan.families.map(async (family): Promise<Check> => {
      const check = (status: Check['status'], detail: string): Check => ({ name: 'proxy-bypass', family: family.family, status, detail })
      const exempt = identityBypasses(family).map(b => b.match)
      const mark = exempt.find((m): m is Extract<IdentityMatch, { kind: 'mark' }> => m.kind === 'mark')?.mark.value
      // run has made sure this process is in the proxy's net_cls group when the plan exempts by classid.
      const classid = exempt.find((m): m is Extract<IdentityMatch, { kind: 'cgroup' }> => m.kind === 'cgroup')?.classid
      const self = { ...as, mark: mark ?? 0, classid: classid ?? 0 }
      const direct = await openDirect(family.family)
      const port = portOf(direct)
      // An address the plan redirects an app (nobody) to, and lets this identity reach directly.
      const address = localAddresses(family.family)
        .filter(a => family.family === 'ipv4' || !a.startsWith('fe80:'))
        .find(a => {
          const packet = appPacket(a, port, NOBODY)
          return fateOf(family, packet).kind === 'redirect' && fateOf(family, { ...packet, ...self }).kind !== 'redirect'
        })
      if (address === undefined) {
        await closeAll([direct])
        return check('not checked', 'no address of this pod is one the plan redirects an app from and lets this identity reach')
      }
      const fate = fateOf(family, appPacket(address, port, NOBODY))
      const proxy = fate.kind === 'redirect' ? await openProxy(family.family, fate.port) : undefined
      const landing = await land(() => connectSocket(address, port, mark === undefined ? {} : { mark }))
      await closeAll([direct, proxy])
      const who = `uid ${as.uid} gid ${as.gid}${mark === undefined ? '' : ` with SO_MARK ${hex(mark)}`}`
      return check(landing.on === 'direct' ? 'passed' : 'failed', `${who} -> ${bracket(address)}:${port} reached ${where(landing, 'the proxy port')}`)
    }),
  )
