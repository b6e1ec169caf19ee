// The live probe: read-back proves the rules are there, this proves they work. Everything stays inside the pod:
// the probe listens on the proxy port and on a free "direct" port, then connects to one of the pod's own
// addresses on the direct port with sockets made under each identity. A captured connection lands on the proxy
// port with SO_ORIGINAL_DST naming the direct port; a bypassing one lands on the direct port. No packet can leave
// the pod even if a rule is wrong: the destination is always local.

import net from 'node:net'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import { originalDestination } from '../net/original-dst.js'
import { loadLibc } from '../net/libc.js'
import { openSocket, type SocketOptions } from '../net/socket.js'
import { ensureNetClsGroup, joinGroup, netClsMount, netClsPath } from '../cgroup/net-cls.js'
import { parseCidr } from '../settings/cidr.js'
import type { Cidr, Family, Settings } from '../settings/types.js'
import { hex, messageOf } from '../text.js'

export interface Check {
  readonly name: string
  readonly family: Family
  readonly status: 'passed' | 'failed' | 'not checked'
  readonly detail: string
}

const TIMEOUT_MS = 300
const NOBODY = 65534

const inCidr = (address: string, cidr: Cidr): boolean => {
  const host = parseCidr(`${address}/${cidr.prefix}`)
  return host !== undefined && host.family === cidr.family && host.address === cidr.address
}

/**
 * pickTarget chooses a local, non-loopback, non-link-local address the plan captures on any port: for the
 * explicit method, one inside a listed service without a port (the probe never dials out of the pod). Pure.
 */
export const pickTarget = (settings: Settings, family: Family, addresses: readonly string[]): string | undefined =>
  addresses.find(address => {
    const include = settings.outboundMethod === 'explicit' ? settings.services.filter(s => !s.ports).map(s => s.cidr) : settings.outboundIncludeCidrs
    const included = include === 'all' || include.some(c => inCidr(address, c))
    return included && !settings.outboundExcludeCidrs.some(c => inCidr(address, c)) && (family === 'ipv4' || !address.startsWith('fe80:'))
  })

const localAddresses = (family: Family): string[] =>
  Object.values(networkInterfaces())
    .flat()
    .filter((i): i is NetworkInterfaceInfo => !!i && !i.internal && i.family === (family === 'ipv4' ? 'IPv4' : 'IPv6'))
    .map(i => i.address)

const bracket = (host: string): string => (host.includes(':') ? `[${host}]` : host)

type Landing = { readonly on: 'proxy'; readonly originalDst: string } | { readonly on: 'direct' } | { readonly on: 'nowhere'; readonly why: string }

interface Listeners {
  readonly directPort: number
  readonly proxyListening: boolean
  close(): Promise<void>
}

// Each listener answers with one line saying who it is; the proxy listener adds SO_ORIGINAL_DST.
// One family per listener, so the two families' probes can hold the same port at once.
const listen = (port: number, family: Family, answer: (s: net.Socket) => string): Promise<net.Server> =>
  new Promise((resolve, reject) => {
    const server = net.createServer(socket => socket.end(answer(socket)))
    server.once('error', reject)
    server.listen({ port, host: family === 'ipv4' ? '0.0.0.0' : '::', ipv6Only: family === 'ipv6' }, () => resolve(server))
  })

const openListeners = async (settings: Settings, family: Family): Promise<Listeners> => {
  const excluded = (port: number): boolean => settings.outboundExcludePorts.some(r => port >= r.from && port <= r.to)
  let direct = await listen(0, family, () => 'direct\n')
  while (excluded((direct.address() as net.AddressInfo).port)) {
    const next = await listen(0, family, () => 'direct\n')
    direct.close()
    direct = next
  }
  const proxy = await listen(settings.proxyPort, family, s => {
    const dst = originalDestination(s)
    return `proxy ${dst ? `${bracket(dst.address)}:${dst.port}` : '-'}\n`
  }).catch(() => undefined)
  return {
    directPort: (direct.address() as net.AddressInfo).port,
    proxyListening: proxy !== undefined,
    close: async () => void (await Promise.all([direct, proxy].map(s => s && new Promise(r => s.close(r))))),
  }
}

const land = (socket: net.Socket, host: string, port: number): Promise<Landing> =>
  new Promise(resolve => {
    let text = ''
    const done = (landing: Landing): void => {
      socket.destroy()
      resolve(landing)
    }
    socket.setTimeout(TIMEOUT_MS, () => done({ on: 'nowhere', why: `no answer within ${TIMEOUT_MS} ms` }))
    socket.on('data', chunk => (text += String(chunk)))
    socket.on('end', () => {
      const [who, dst = '-'] = text.trim().split(' ')
      done(
        who === 'proxy'
          ? { on: 'proxy', originalDst: dst }
          : who === 'direct'
            ? { on: 'direct' }
            : { on: 'nowhere', why: `unexpected answer "${text.trim()}"` },
      )
    })
    socket.on('error', error => done({ on: 'nowhere', why: error.message }))
    socket.connect({ host, port })
  })

/** The probe may not take another identity (no CAP_SETUID/CAP_SETGID, as in a NET_ADMIN-only init container). */
class CannotAssume extends Error {}

/** Makes a socket whose credentials are `uid`/`gid`: the owner match reads the credentials it was created with. */
const socketAs = (host: string, uid: number, gid: number, options: SocketOptions = {}): net.Socket => {
  // Load the FFI while still root: under the other identity its files may not be readable.
  loadLibc()
  // Both exist on Linux; Node types them optional because Windows lacks them. glibc applies them to every thread.
  const { setegid, seteuid } = process as Required<NodeJS.Process>
  try {
    setegid(gid)
    seteuid(uid)
  } catch (error) {
    setegid(0)
    throw new CannotAssume(`cannot act as uid ${uid} gid ${gid} (${messageOf(error)}): give init CAP_SETUID and CAP_SETGID to probe this`)
  }
  try {
    return openSocket(host, options)
  } finally {
    seteuid(0)
    setegid(0)
  }
}

/** probeFamily runs one family's checks, with listeners of its own. */
const probeFamily = async (settings: Settings, family: Family, appUid: number): Promise<Check[]> => {
  const checks: Check[] = []
  const target = pickTarget(settings, family, localAddresses(family))
  const skip = (name: string, detail: string): void => void checks.push({ name, family, status: 'not checked', detail })
  // The probe's connections stay in the pod, so they leave by lo: with lo excluded none of them is captured.
  const loExcluded = settings.excludeInterfaces.includes('lo')
  if (!target || loExcluded) {
    const why = loExcluded
      ? 'ISTIO_EXCLUDE_INTERFACES leaves lo alone, and every probe connection stays in the pod on lo'
      : settings.outboundMethod === 'explicit'
        ? 'no address of this pod is a listed service without a port (the read-back covers the sets)'
        : 'no address of this pod is in the capture scope'
    for (const name of ['capture', 'bypass', 'loopback']) skip(name, why)
    return checks
  }
  const listeners = await openListeners(settings, family)
  const expect = async (name: string, socket: () => net.Socket, want: 'proxy' | 'direct', who: string, host = target): Promise<void> => {
    let landing: Landing
    try {
      landing = await land(socket(), host, listeners.directPort)
    } catch (error) {
      if (error instanceof CannotAssume) return skip(name, error.message)
      landing = { on: 'nowhere', why: messageOf(error) }
    }
    const wantedDst = `${bracket(host)}:${listeners.directPort}`
    const ok = landing.on === want && (landing.on !== 'proxy' || landing.originalDst === wantedDst)
    const seen =
      landing.on === 'proxy'
        ? `the proxy port (SO_ORIGINAL_DST ${landing.originalDst})`
        : landing.on === 'direct'
          ? 'its destination'
          : `nowhere: ${landing.why}`
    checks.push({ name, family, status: ok ? 'passed' : 'failed', detail: `${who} -> ${bracket(host)}:${listeners.directPort} reached ${seen}` })
  }
  try {
    // Root stands for the app: only the proxy's identity is exempt, and root needs no other identity to probe.
    if (listeners.proxyListening) {
      await expect('capture', () => openSocket(target), 'proxy', 'uid 0 (an app identity)')
    } else {
      skip('capture', `port ${settings.proxyPort} is in use (is the proxy already running?)`)
    }
    await probeBypass(settings, target, appUid, expect, skip)
    const loopback = family === 'ipv4' ? '127.0.0.1' : '::1'
    await expect('loopback', () => openSocket(loopback), 'direct', `uid 0 from ${loopback}`, loopback)
  } finally {
    await listeners.close()
  }
  return checks
}

/**
 * probeCapture runs the live checks for each family and reports each one; it never throws for a failed check
 * (the caller decides). Needs root in the pod's network namespace, as init has. Families run side by side,
 * except for the cgroup method: its bypass check moves this whole process into the group for a moment, which
 * would classify the other family's app sockets too.
 */
export const probeCapture = async (settings: Settings, families: readonly Family[]): Promise<Check[]> => {
  const appUid = [NOBODY, NOBODY - 1].find(u => u !== settings.proxyUid && u !== settings.proxyGid) ?? NOBODY
  if (settings.outboundMethod !== 'cgroup') return (await Promise.all(families.map(f => probeFamily(settings, f, appUid)))).flat()
  const checks: Check[] = []
  for (const family of families) checks.push(...(await probeFamily(settings, family, appUid)))
  return checks
}

type Expect = (name: string, socket: () => net.Socket, want: 'proxy' | 'direct', who: string) => Promise<void>

const probeBypass = async (
  settings: Settings,
  target: string,
  appUid: number,
  expect: Expect,
  skip: (name: string, detail: string) => void,
): Promise<void> => {
  if (settings.proxyGid !== undefined) {
    await expect('bypass-gid', () => socketAs(target, appUid, settings.proxyGid!), 'direct', `gid ${settings.proxyGid}`)
  }
  const method = settings.outboundMethod
  switch (method) {
    // The explicit method exempts the proxy by UID too.
    case 'uid':
    case 'explicit':
      return expect('bypass', () => socketAs(target, settings.proxyUid, settings.proxyUid), 'direct', `proxy uid ${settings.proxyUid}`)
    case 'mark':
      // As root: leaving euid 0 would drop CAP_NET_ADMIN, which SO_MARK needs; root is not exempt in this method.
      return expect('bypass', () => openSocket(target, { mark: settings.mark.value }), 'direct', `uid 0 with SO_MARK ${hex(settings.mark.value)}`)
    case 'cgroup': {
      const root = await netClsMount()
      if (!root) return skip('bypass', 'the net_cls hierarchy is not mounted in this container')
      const home = ((await netClsPath('self')) ?? '/').replace(/\/$/, '')
      // The same group the agent will use: made here if need be, so init can probe before the proxy exists.
      let group: string
      try {
        group = await ensureNetClsGroup(root, settings.netClsId)
        await joinGroup(group, process.pid)
      } catch (error) {
        return skip('bypass', `could not join a net_cls group with classid ${hex(settings.netClsId)}: ${messageOf(error)}`)
      }
      // The classid is taken when the socket is made; moving back afterwards re-labels our sockets, so the
      // connection is made and answered before leaving the group.
      try {
        await expect('bypass', () => openSocket(target), 'direct', `uid 0 in net_cls classid ${hex(settings.netClsId)}`)
      } finally {
        await joinGroup(`${root}${home}`, process.pid)
      }
      return
    }
    default:
      return unreachable(method)
  }
}

const unreachable = (value: never): never => {
  throw new Error(`no bypass probe for outbound method ${String(value)}`)
}
