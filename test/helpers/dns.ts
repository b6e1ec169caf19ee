// Real DNS servers for the DNS capture tests: dnsmasq (Debian's dnsmasq-base, no system service) in the remote
// namespace, as the nameserver a pod's resolv.conf or its runtime names, answering remote.test itself.
import type { Sandbox } from '../../src/sandbox/sandbox.js'
import { REMOTE, REMOTE6, runtimeRoot } from './kernel.js'

export const DNSMASQ = '/usr/sbin/dnsmasq'
/** The one-query client (see the fixture's header), where a dropped UID can read it. */
export const dnsClient = (): string => `${runtimeRoot()}/test/fixtures/dns-query.mjs`
/** In the foreground, no files, no cache, logging to stderr: every answer is given fresh, and the test sees it start. */
export const DNSMASQ_COMMON = [
  '--keep-in-foreground',
  '--no-resolv',
  '--no-hosts',
  '--bind-interfaces',
  '--pid-file=',
  '--cache-size=0',
  '--log-facility=-',
]

/** Starts the remote nameserver on REMOTE and REMOTE6 port 53: remote.test is 198.18.5.5 and 2001:db8::5:5. */
export const startRemoteDns = async (box: Sandbox): Promise<void> => {
  const server = box.start('remote', DNSMASQ, [
    ...DNSMASQ_COMMON,
    '--port=53',
    `--listen-address=${REMOTE}`,
    `--listen-address=${REMOTE6}`,
    '--user=root',
    '--address=/remote.test/198.18.5.5',
    '--address=/remote.test/2001:db8::5:5',
  ])
  await server.waitForLine(line => line.includes('cleared cache') || line.includes('started'))
}

/**
 * The proxy's DNS server as `setpriv` arguments: the proxy's UID (1337), loopback only on `port`, answering pod.test
 * itself (198.18.7.7 and 2001:db8::7:7); `options` go before the answers (e.g. where to forward the rest).
 */
export const proxyDnsArgs = (port: number, options: readonly string[] = []): string[] => [
  '--reuid=1337',
  '--regid=1337',
  '--clear-groups',
  DNSMASQ,
  ...DNSMASQ_COMMON,
  `--port=${port}`,
  '--listen-address=127.0.0.1',
  '--listen-address=::1',
  ...options,
  '--address=/pod.test/198.18.7.7',
  '--address=/pod.test/2001:db8::7:7',
]
