// Where a probe connection lands: listeners that stand for the proxy (answering with SO_ORIGINAL_DST) and for the
// real destination, and the connection that reads which one answered. Shared by init's live probe and validate.

import net from 'node:net'
import { originalDestination } from '../net/original-dst.js'
import { listenFd } from '../net/socket.js'
import type { Family } from '../settings/types.js'
import { messageOf } from '../text.js'

// How long a probe waits for an answer. Every path the probe tests ends at a listener of its own, so a healthy probe
// never waits this long; only a packet that goes nowhere does. A node busy starting pods can delay a loopback answer
// by hundreds of ms, and a timeout there is a false exit 5, so this is generous.
export const TIMEOUT_MS = 1500

export interface Check {
  readonly name: string
  readonly family: Family
  readonly status: 'passed' | 'failed' | 'not checked'
  readonly detail: string
}

/** Who makes the probe's app connections. */
export interface Identity {
  readonly uid: number
  readonly gid: number
}

export const bracket = (host: string): string => (host.includes(':') ? `[${host}]` : host)

/** The probe may not take another identity (no CAP_SETUID/CAP_SETGID, as in a NET_ADMIN-only init container). */
export class CannotAssume extends Error {}

export type Landing =
  | { readonly on: 'proxy'; readonly originalDst: string }
  | { readonly on: 'direct' }
  | { readonly on: 'nowhere'; readonly why: string }

/** Where a connection landed, for a check's detail; `proxy` names the listener that stands for the proxy. */
export const where = (landing: Landing, proxy: string): string =>
  landing.on === 'proxy'
    ? `${proxy} (SO_ORIGINAL_DST ${landing.originalDst})`
    : landing.on === 'direct'
      ? 'its destination'
      : `nowhere: ${landing.why}`

// Each listener answers with one line saying who it is; the proxy listener adds SO_ORIGINAL_DST.
// One family per listener, so the two families' probes can hold the same port at once.
const listen = (port: number, family: Family, answer: (s: net.Socket) => string): Promise<net.Server> =>
  new Promise((resolve, reject) => {
    // A client that gave up resets its connection: what it saw is its answer, not an error of this process.
    const server = net.createServer(socket => socket.on('error', () => socket.destroy()).end(answer(socket)))
    server.once('error', reject)
    server.listen({ fd: listenFd(family, port) }, () => resolve(server))
  })

export const openDirect = (family: Family): Promise<net.Server> => listen(0, family, () => 'direct\n')

export const openProxy = (family: Family, port: number): Promise<net.Server | undefined> =>
  listen(port, family, s => {
    const dst = originalDestination(s)
    return `proxy ${dst ? `${bracket(dst.address)}:${dst.port}` : '-'}\n`
  }).catch(() => undefined)

export const closeAll = async (servers: readonly (net.Server | undefined)[]): Promise<void> =>
  void (await Promise.all(servers.map(s => s && new Promise(r => s.close(r)))))

/** Where a connection made by `connect` lands; a connection that cannot even start lands nowhere. */
export const land = (connect: () => net.Socket): Promise<Landing> =>
  new Promise(resolve => {
    let socket: net.Socket
    try {
      socket = connect()
    } catch (error) {
      if (error instanceof CannotAssume) throw error
      return resolve({ on: 'nowhere', why: messageOf(error) })
    }
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
  })
