// demo: a throwaway sandbox that shows the whole idea with real packets. Two network namespaces (a "pod" and a
// "remote" host) joined by a veth on 198.18.0.0/15 test addresses; init runs in the pod; then each kind of
// connection is made and the listener that really got it says so. Everything is deleted at the end.

import { ApplyError, EnvironmentError } from '../errors.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import { formatSettings } from '../settings/format.js'
import type { Settings } from '../settings/types.js'
import { createSandbox, type Reply, type Sandbox } from '../sandbox/sandbox.js'

const POD = '198.18.0.1'
const REMOTE = '198.18.0.2'
const APP_PORT = 8080
const REMOTE_PORT = 9090

interface Probe {
  readonly what: string
  readonly expect: 'proxy' | 'app' | 'remote'
  readonly run: (box: Sandbox) => Promise<Reply>
}

const outcome = (reply: Reply): string => {
  if (!reply.ok || !reply.reply) return `failed: ${reply.error ?? 'no answer'}`
  const { label, originalDst } = reply.reply
  return originalDst ? `${label} (original destination ${originalDst.address}:${originalDst.port})` : `${label} (not redirected)`
}

export const runDemo = async (settings: Settings, io: Io, logger: Logger): Promise<void> => {
  const box = await createSandbox(io, { pod: POD, remote: REMOTE })
  try {
    logger.event('demo', `sandbox: pod ${box.podNs} (${POD}) <-> remote ${box.remoteNs} (${REMOTE})`)
    // As in a pod: the init step runs (and probes) before the app and the proxy start listening.
    const env = { ...formatSettings(settings), ISTIO_IPV6: 'false', ISTIO_LOG_FORMAT: 'text' }
    const init = await box.runInit(env)
    if (init.exitCode !== 0) throw new ApplyError(`init failed in the sandbox (exit ${init.exitCode}): ${init.output}`)
    io.out.write(`${init.output}\n`)
    await box.serve('pod', [`proxy=0.0.0.0:${settings.proxyPort}`, `app=${POD}:${APP_PORT}`, `app-loopback=127.0.0.1:${APP_PORT}`])
    await box.serve('remote', [`remote=${REMOTE}:${REMOTE_PORT}`])
    const uid = settings.proxyUid
    const probes: Probe[] = [
      { what: `app (root) -> remote ${REMOTE}:${REMOTE_PORT}`, expect: 'proxy', run: b => b.connect('pod', REMOTE, REMOTE_PORT) },
      { what: `app (uid 1000) -> remote ${REMOTE}:${REMOTE_PORT}`, expect: 'proxy', run: b => b.connect('pod', REMOTE, REMOTE_PORT, { uid: 1000 }) },
      {
        what: `proxy (uid ${uid}) -> remote ${REMOTE}:${REMOTE_PORT}`,
        expect: settings.outboundMethod === 'uid' ? 'remote' : 'proxy',
        run: b => b.connect('pod', REMOTE, REMOTE_PORT, { uid }),
      },
      { what: `remote -> pod ${POD}:${APP_PORT} (inbound)`, expect: 'proxy', run: b => b.connect('remote', POD, APP_PORT) },
      { what: `app -> 127.0.0.1:${APP_PORT} (loopback)`, expect: 'app', run: b => b.connect('pod', '127.0.0.1', APP_PORT) },
    ]
    const rows: string[] = []
    let surprises = 0
    for (const probe of probes) {
      const reply = await probe.run(box)
      const landed = reply.reply?.label.replace('-loopback', '')
      const asExpected = landed === probe.expect
      if (!asExpected) surprises++
      rows.push(`${asExpected ? 'ok  ' : 'FAIL'} ${probe.what.padEnd(44)} landed on ${outcome(reply)}`)
    }
    logger.report(
      'demo',
      `sidecar-redirect demo: ${surprises === 0 ? 'every connection went where the design says' : `${surprises} connection(s) went astray`}`,
      {
        traffic: rows,
      },
    )
    if (surprises > 0) throw new EnvironmentError('the demo saw traffic go where it should not')
  } finally {
    await box.destroy()
    logger.event('demo', `deleted ${box.podNs} and ${box.remoteNs}`)
  }
}
