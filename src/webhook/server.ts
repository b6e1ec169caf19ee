// The admission webhook's HTTPS server: POST /inject (and /inject/opt-in) answers AdmissionReviews, /healthz and /readyz answer
// probes. Bounded: a body over ISTIO_WEBHOOK_MAX_BYTES is refused (413) without being read, and a request that
// has not arrived whole within ISTIO_WEBHOOK_REQUEST_SECONDS is cut off. The certificate and key are read from
// files and read again when they change (cert-manager and Helm rewrite a Secret volume by swapping a symlink):
// new connections get the new pair, without a restart; a pair that does not load leaves the old one in use.

import { X509Certificate } from 'node:crypto'
import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { createServer, type Server } from 'node:https'
import { dirname } from 'node:path'
import { createSecureContext } from 'node:tls'
import { EnvironmentError } from '../errors.js'
import type { SettingsSource } from '../inject/settings.js'
import type { WebhookSettings } from '../settings/types.js'
import { messageOf } from '../text.js'
import { reviewAdmission } from './review.js'

/** The path of the webhook for pods outside opted-in namespaces: injected only when they opt in themselves. */
export const OPT_IN_PATH = '/inject/opt-in'

/** Where the server reports: one line per admission decision, per certificate (re)load, per rejected request. */
export type Report = (event: string, message: string, fields: Readonly<Record<string, unknown>>) => void

export interface Webhook {
  readonly server: Server
  readonly port: number
  /** Reads the certificate files now (also done on change notifications and every ISTIO_WEBHOOK_CERT_CHECK_SECONDS). */
  readonly reload: () => void
  readonly close: () => Promise<void>
}

interface Pair {
  readonly cert: Buffer
  readonly key: Buffer
}

const readPair = (settings: WebhookSettings): Pair => {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path)
    } catch (error) {
      throw new EnvironmentError(`cannot read the webhook's ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? messageOf(error)}`)
    }
  }
  return { cert: read(settings.certFile, 'certificate (ISTIO_WEBHOOK_CERT)'), key: read(settings.keyFile, 'key (ISTIO_WEBHOOK_KEY)') }
}

const describeCert = (cert: Buffer): Record<string, string> => {
  const x509 = new X509Certificate(cert)
  return { subject: x509.subject.replace(/\n/g, ', '), notAfter: x509.validTo, fingerprint: x509.fingerprint256 }
}

/** startWebhook listens on the settings' port (0 picks a free one) and resolves once it does; throws EnvironmentError. */
export const startWebhook = async (settings: WebhookSettings, source: SettingsSource, report: Report): Promise<Webhook> => {
  let pair = readPair(settings)
  try {
    createSecureContext(pair)
  } catch (error) {
    throw new EnvironmentError(`the webhook's certificate and key do not load (${settings.certFile}, ${settings.keyFile}): ${messageOf(error)}`)
  }
  // Node looks for requests over their time every connectionsCheckingInterval (30 s by default): often enough here.
  const checkMs = Math.min(1000, settings.requestSeconds * 500)
  const server = createServer({ ...pair, minVersion: 'TLSv1.2', connectionsCheckingInterval: checkMs }, (request, response) => {
    const answer = (status: number, body: string, type = 'text/plain'): void => {
      response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
      response.end(body)
    }
    let refused = false
    const refuse = (status: number, reason: string): void => {
      if (refused) return
      refused = true
      report('request-refused', `${request.method} ${request.url}: ${status} ${reason}`, {
        status,
        reason,
        method: request.method,
        path: request.url,
      })
      // The rest of the body is never read: the connection is closed once the answer is out.
      request.pause()
      response.setHeader('connection', 'close')
      response.on('finish', () => request.socket.destroy())
      answer(status, `${reason}\n`)
    }
    const path = (request.url ?? '').split('?')[0]
    if (path === '/healthz' || path === '/readyz') return answer(200, 'ok\n')
    // /inject serves the namespaces that opted in; /inject/opt-in the pods that opt in themselves elsewhere.
    if (path !== '/inject' && path !== OPT_IN_PATH) return answer(404, 'not found\n')
    if (request.method !== 'POST') return refuse(405, `only POST is served on ${path}`)
    const declared = Number(request.headers['content-length'] ?? 0)
    if (declared > settings.maxBytes) return refuse(413, `the body is ${declared} bytes, over ISTIO_WEBHOOK_MAX_BYTES (${settings.maxBytes})`)
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > settings.maxBytes) return refuse(413, `the body is over ISTIO_WEBHOOK_MAX_BYTES (${settings.maxBytes} bytes)`)
      chunks.push(chunk)
    })
    request.on('end', () => {
      if (refused) return
      const started = performance.now()
      const result = reviewAdmission(Buffer.concat(chunks).toString('utf8'), source, { requireOptIn: path === OPT_IN_PATH })
      const fields = { ...result.log, status: result.status, ms: Math.round((performance.now() - started) * 10) / 10 }
      // Values as JSON: a pod's name or uid is the requester's text, and reaches this line before any validation.
      report(
        'admission',
        Object.entries(fields)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(' '),
        fields,
      )
      answer(result.status, result.body, result.status === 200 ? 'application/json' : 'text/plain')
    })
  })
  // The whole request (headers and body) within the bound; idle keep-alive connections are closed after 30 s.
  server.requestTimeout = settings.requestSeconds * 1000
  server.headersTimeout = settings.requestSeconds * 1000
  server.keepAliveTimeout = 30_000
  server.on('tlsClientError', error => report('tls-error', messageOf(error), { reason: messageOf(error) }))

  const reload = (): void => {
    let next: Pair
    try {
      next = readPair(settings)
    } catch (error) {
      report('certificate-error', messageOf(error), { reason: messageOf(error) })
      return
    }
    if (next.cert.equals(pair.cert) && next.key.equals(pair.key)) return
    try {
      createSecureContext(next)
      server.setSecureContext(next)
    } catch (error) {
      // Often a moment between the two files' updates: the next check takes the pair once both are new.
      report('certificate-error', `the new certificate and key do not load; still serving the previous pair: ${messageOf(error)}`, {
        reason: messageOf(error),
      })
      return
    }
    pair = next
    report('certificate', 'serving a new certificate', describeCert(pair.cert))
  }
  const watchers: FSWatcher[] = []
  let pending: NodeJS.Timeout | undefined
  for (const dir of new Set([dirname(settings.certFile), dirname(settings.keyFile)])) {
    try {
      watchers.push(
        watch(dir, () => {
          clearTimeout(pending)
          pending = setTimeout(reload, 100)
        }),
      )
    } catch {
      // No notifications there (a missing directory, no inotify): the periodic check still sees the change.
    }
  }
  const timer = setInterval(reload, settings.certCheckSeconds * 1000)
  timer.unref()
  await new Promise<void>((resolve, reject) => {
    server.once('error', error => reject(new EnvironmentError(`the webhook cannot listen on port ${settings.port}: ${messageOf(error)}`)))
    server.listen(settings.port, resolve)
  })
  report('listening', `listening on port ${(server.address() as { port: number }).port}`, describeCert(pair.cert))
  return {
    server,
    port: (server.address() as { port: number }).port,
    reload,
    close: async () => {
      clearInterval(timer)
      clearTimeout(pending)
      for (const w of watchers) w.close()
      server.closeIdleConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
  }
}
