// A real proxy for the inbound tests: Debian's haproxy, built with Linux TPROXY support. As a transparent proxy it
// accepts diverted connections (`bind ... transparent`) and connects on to the original destination from the
// client's own address (`source ... usesrc clientip`, `server ... 0.0.0.0`); as a plain one it relays to the app
// from its own address.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import type { Sandbox } from '../../src/sandbox/sandbox.js'

/**
 * transparent: takes diverted connections and connects on from the client's address; plain: a REDIRECT-mode proxy;
 * relay: takes diverted connections and relays them to a labelled listener, so traffic tests see who took one.
 */
export type ProxyKind = 'transparent' | 'plain' | 'relay'

const HEAD = `global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 10s
  timeout server 10s
`

/** Accepts on `port` (diverted connections too, with `transparent`) and relays to `app` from its own address. */
const relay = (port: number, app: { v4: string; v6: string }, bind: string): string => `frontend in4
  bind 0.0.0.0:${port}${bind}
  default_backend app4
frontend in6
  bind :::${port} v6only${bind}
  default_backend app6
backend app4
  server app ${app.v4}
backend app6
  server app ${app.v6}
`

// haproxy reads "::" alone as an address ":" and a port: ":::0" is the IPv6 any-address with port 0 (keep it).
const BODY: Record<ProxyKind, (port: number, app: { v4: string; v6: string }) => string> = {
  transparent: port => `frontend in4
  bind 0.0.0.0:${port} transparent
  default_backend original4
frontend in6
  bind :::${port} v6only transparent
  default_backend original6
backend original4
  source 0.0.0.0 usesrc clientip
  server original 0.0.0.0
backend original6
  source ::: usesrc clientip
  server original :::0
`,
  plain: (port, app) => relay(port, app, ''),
  relay: (port, app) => relay(port, app, ' transparent'),
}

/**
 * Writes a haproxy config listening on `port` into a world-readable temp file (the proxy runs as UID 1337) and
 * returns its path; `app` (host:port per family) is where the plain proxy relays to.
 */
export const haproxyConfig = (kind: ProxyKind, port: number, app: { v4: string; v6: string }): string => {
  const dir = mkdtempSync(`${tmpdir()}/sr-haproxy-`)
  chmodSync(dir, 0o755)
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const file = `${dir}/${kind}.cfg`
  writeFileSync(file, HEAD + BODY[kind](port, app))
  chmodSync(file, 0o644)
  return file
}

/** Waits until haproxy has bound every port (both families), so a connection is not refused for being early. */
export const waitListening = async (box: Sandbox, ports: readonly number[]): Promise<void> => {
  for (let tries = 0; tries < 100; tries++) {
    const listening = await box.exec('pod', 'ss', ['-Htln', ...ports.flatMap((p, i) => [...(i ? ['or'] : []), `sport = :${p}`])])
    if (listening.stdout.split('\n').filter(Boolean).length >= 2 * ports.length) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/**
 * Starts a transparent relay per [port, to] pair in the pod, as the proxy runs (UID 1337, so its replies are not
 * outbound capture's, with CAP_NET_ADMIN for IP_TRANSPARENT): each takes diverted connections on `port` and relays
 * them to the listener on `to` (127.0.0.1 and ::1), so a client's answer says who took its connection.
 */
export const startRelays = async (t: Test, box: Sandbox, pairs: readonly (readonly [number, number])[]): Promise<void> => {
  for (const [port, to] of pairs) {
    const relay = box.start('pod', '/usr/bin/setpriv', [
      ...['--reuid=1337', '--regid=1337', '--clear-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin'],
      ...['/usr/sbin/haproxy', '-db', '-f', haproxyConfig('relay', port, { v4: `127.0.0.1:${to}`, v6: `[::1]:${to}` })],
    ])
    t.teardown(() => relay.stop())
  }
  await waitListening(
    box,
    pairs.map(([port]) => port),
  )
}
