// The admission webhook over real HTTPS, verified against the test's own CA as the API server verifies it against
// the caBundle: AdmissionReview bodies (a recorded shape of the API server's, with its defaults) get the patch that
// fast-json-patch applies into exactly inject's output; refusals, warnings and pods it must never touch; a
// rotated certificate served without a restart; oversized, slow and malformed requests refused without harm.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { createServer as createNetServer } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { tmpdir } from 'node:os'
import fastJsonPatch, { type Operation } from 'fast-json-patch'
import t from 'tap'
import { inject } from '../../../src/inject/inject.js'
import { startWebhook, type Webhook } from '../../../src/webhook/server.js'
import { startProcess } from '../../../src/exec/processes.js'
import { untapped } from '../../helpers/processes.js'
import { type Ca, makeCa, makeServerCert } from '../../helpers/tls.js'
import { type Obj, unknownKeys } from '../../helpers/workloads.js'
import { Pod } from 'kubernetes-models/v1'

const { applyPatch, deepClone } = fastJsonPatch

const RECORDED = JSON.parse(readFileSync(new URL('../../fixtures/admission-review.json', import.meta.url), 'utf8')) as Obj
const source = { env: { ISTIO_INJECT_KUBE_VERSION: '1.33' }, flags: {} }

interface Reply {
  status: number
  body: string
  fingerprint: string
}

/** One HTTPS request on a new connection, verifying the server against `ca` as localhost. */
const call = (port: number, ca: string, body: string | Buffer, options: { path?: string; method?: string; headers?: Obj } = {}): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca,
        agent: false,
        method: options.method ?? 'POST',
        path: options.path ?? '/inject',
        headers: { 'content-type': 'application/json', ...options.headers },
      },
      res => {
        const chunks: Buffer[] = []
        const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256
        res.on('data', c => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), fingerprint }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })

const review = (object: Obj, extra: Obj = {}): string => {
  const r = deepClone(RECORDED)
  r.request.object = object
  Object.assign(r.request, extra)
  return JSON.stringify(r)
}

const responseOf = (reply: Reply): Obj => {
  const parsed = JSON.parse(reply.body)
  return parsed.response
}

const patchOf = (response: Obj): Operation[] => JSON.parse(Buffer.from(response['patch'], 'base64').toString())

// A Kubernetes secret volume: files behind a `..data` symlink to a timestamped directory, swapped in one rename.
const secretVolume = (dir: string, files: Record<string, string>, generation: number): void => {
  const data = `${dir}/..${generation}`
  mkdirSync(data)
  for (const [name, text] of Object.entries(files)) writeFileSync(`${data}/${name}`, text)
  symlinkSync(`..${generation}`, `${dir}/..data_tmp`)
  renameSync(`${dir}/..data_tmp`, `${dir}/..data`)
  for (const name of Object.keys(files)) {
    try {
      symlinkSync(`..data/${name}`, `${dir}/${name}`)
    } catch {
      // Already a link through ..data.
    }
  }
}

let ca: Ca
let webhook: Webhook
let dir: string
const events: { event: string; message: string; fields: Obj }[] = []

t.before(async () => {
  ca = await makeCa()
  dir = mkdtempSync(`${tmpdir()}/sr-webhook-`)
  secretVolume(dir, await makeServerCert(ca).then(p => ({ 'tls.crt': p.cert, 'tls.key': p.key })), 1)
  webhook = await startWebhook(
    { port: 0, certFile: `${dir}/tls.crt`, keyFile: `${dir}/tls.key`, maxBytes: 256 * 1024, requestSeconds: 2, certCheckSeconds: 1 },
    source,
    (event, message, fields) => void events.push({ event, message, fields }),
  )
})
t.teardown(async () => {
  await webhook?.close()
  rmSync(dir, { recursive: true, force: true })
})

t.test('/healthz and /readyz answer over HTTPS with a certificate the CA vouches for', async t => {
  for (const path of ['/healthz', '/readyz']) t.match(await call(webhook.port, ca.cert, '', { path, method: 'GET' }), { status: 200, body: 'ok\n' })
})

t.test("the API server's recorded review of a Deployment's pod: the patch makes exactly inject's output", async t => {
  const reply = await call(webhook.port, ca.cert, JSON.stringify(RECORDED))
  t.equal(reply.status, 200)
  const body = JSON.parse(reply.body)
  t.same([body.apiVersion, body.kind, body.response.uid], ['admission.k8s.io/v1', 'AdmissionReview', RECORDED['request'].uid], 'the uid is echoed')
  t.same([body.response.allowed, body.response.patchType], [true, 'JSONPatch'])
  const pod = RECORDED['request'].object
  const patched = applyPatch(deepClone(pod), patchOf(body.response), true).newDocument
  const expected = inject(pod, source, { namespace: 'shop', at: '' })
  t.same(patched, expected.kind === 'injected' && { ...pod, ...expected.template }, "applied with fast-json-patch: inject's own output")
  t.doesNotThrow(() => new Pod(patched as never).validate(), 'a valid Pod')
  t.same(unknownKeys('Container', patched.spec.initContainers), [])
  t.same(
    patched.spec.initContainers.map((c: Obj) => c['name']),
    ['sidecar-redirect-init', 'sidecar-redirect-proxy'],
  )
  t.match(events.at(-1), {
    event: 'admission',
    fields: { decision: 'injected', uid: RECORDED['request'].uid, namespace: 'shop', pod: 'web-6d8f9c7b5-*', layout: 'native' },
  })

  // Reinvoked after the API server filled in its defaults in our containers: nothing to change.
  for (const c of patched.spec.initContainers) Object.assign(c, { terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' })
  const again = responseOf(await call(webhook.port, ca.cert, review(patched)))
  t.same([again['allowed'], again['patch']], [true, undefined], 'reinvocation: allowed, no patch')
  t.match(events.at(-1), { fields: { decision: 'unchanged' } })
})

t.test('refusals deny the pod naming the field; kube-system and our own pods pass untouched; warnings reach the user', async t => {
  const pod = (change: (p: Obj) => void): Obj => {
    const p = deepClone(RECORDED['request'].object)
    change(p)
    return p
  }
  const hostNetwork = responseOf(await call(webhook.port, ca.cert, review(pod(p => (p.spec.hostNetwork = true)))))
  t.match(hostNetwork, { allowed: false, status: { code: 403, message: /spec\.hostNetwork is true: the pod shares the node's network namespace/ } })
  t.match(events.at(-1), { fields: { decision: 'refused', refusals: [{ kind: 'host-network', field: 'spec.hostNetwork' }] } })
  const proxyUid = responseOf(await call(webhook.port, ca.cert, review(pod(p => (p.spec.containers[0].securityContext.runAsUser = 1337)))))
  t.match(proxyUid, { allowed: false, status: { message: /spec\.containers\[0\]\.securityContext\.runAsUser is 1337, the proxy's UID/ } })

  for (const [what, body] of [
    [
      'kube-system',
      review(
        pod(p => (p.metadata.namespace = 'kube-system')),
        { namespace: 'kube-system' },
      ),
    ],
    ['our own pod', review(pod(p => (p.metadata.labels['app.kubernetes.io/name'] = 'sidecar-redirect')))],
    ['an opted-out pod', review(pod(p => (p.metadata.annotations['inject.sidecar-redirect.io/inject'] = 'disabled')))],
    [
      'a Deployment',
      review(
        pod(() => {}),
        { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
      ),
    ],
    [
      'an update',
      review(
        pod(() => {}),
        { operation: 'UPDATE' },
      ),
    ],
  ] as const) {
    const response = responseOf(await call(webhook.port, ca.cert, body))
    t.same([response['allowed'], response['patch']], [true, undefined], `${what}: allowed as it is`)
    t.match(events.at(-1)?.fields['decision'], /skipped|ignored/, `${what}: logged as ${events.at(-1)?.fields['decision']}`)
  }

  const hostile = pod(p => (p.metadata.generateName = 'web-\n[fake] decision=injected "x'))
  t.equal(responseOf(await call(webhook.port, ca.cert, review(hostile)))['allowed'], true)
  t.notMatch(events.at(-1)?.message, /\n/, "a pod's name with a newline in it stays inside its one log line, quoted")
  t.match(events.at(-1)?.message, 'pod="web-\\n[fake] decision=injected \\"x*"')

  const warned = responseOf(await call(webhook.port, ca.cert, review(pod(p => delete p.spec.containers[0].securityContext.capabilities))))
  t.equal(warned['allowed'], true)
  t.match(warned['warnings'], [/^spec\.containers\[0\]\.securityContext\.capabilities leaves container "app" NET_RAW/])
  t.ok(
    warned['warnings'].every((w: string) => w.length <= 256),
    'each warning within the 256 characters the API server keeps',
  )
})

t.test('/inject/opt-in: a pod outside an opted-in namespace is injected only when it opts in, by label or annotation', async t => {
  const pod = (metadata: Obj): Obj => {
    const p = deepClone(RECORDED['request'].object)
    Object.assign(p.metadata.labels, metadata['labels'] ?? {})
    Object.assign(p.metadata.annotations, metadata['annotations'] ?? {})
    return p
  }
  for (const [what, metadata, injected] of [
    ['no opt-in', {}, false],
    ['the label', { labels: { 'sidecar-redirect.io/inject': 'enabled' } }, true],
    ['the annotation', { annotations: { 'inject.sidecar-redirect.io/inject': 'enabled' } }, true],
  ] as const) {
    const response = responseOf(await call(webhook.port, ca.cert, review(pod(metadata)), { path: '/inject/opt-in' }))
    t.same([response['allowed'], response['patch'] !== undefined], [true, injected], `${what}: ${injected ? 'injected' : 'let through untouched'}`)
    if (!injected) t.match(events.at(-1), { fields: { decision: 'skipped', reason: /neither its namespace nor the pod opts in/ } })
  }
  const plain = responseOf(await call(webhook.port, ca.cert, review(pod({}))))
  t.ok(plain['patch'], '/inject (a labelled namespace): injected without the pod opting in')
})

t.test('bad requests are refused, and the webhook keeps serving', async t => {
  const good = JSON.stringify(RECORDED)
  const cases: [string, () => Promise<Reply>, number][] = [
    ['not JSON', () => call(webhook.port, ca.cert, '{"apiVersion":'), 400],
    ['another API version', () => call(webhook.port, ca.cert, good.replace('admission.k8s.io/v1', 'admission.k8s.io/v1beta1')), 400],
    ['no uid', () => call(webhook.port, ca.cert, good.replace(/"uid":"3b1f[^"]*"/, '"uid":""')), 400],
    ['a JSON array', () => call(webhook.port, ca.cert, '[]'), 400],
    ['GET /inject', () => call(webhook.port, ca.cert, '', { method: 'GET' }), 405],
    ['another path', () => call(webhook.port, ca.cert, good, { path: '/mutate' }), 404],
    ['a declared 1 MiB body', () => call(webhook.port, ca.cert, Buffer.alloc(1024 * 1024, ' ')), 413],
  ]
  for (const [what, send, status] of cases) {
    t.equal((await send()).status, status, `${what}: ${status}`)
    t.equal((await call(webhook.port, ca.cert, good)).status, 200, '  ... and the next review is answered')
  }
  const before = events.length
  // A chunked body (no length declared) that grows past the bound: answered 413 or cut off, never buffered whole.
  const outcome = await new Promise<string>(resolve => {
    const req = request(
      { host: '127.0.0.1', port: webhook.port, servername: 'localhost', ca: ca.cert, agent: false, method: 'POST', path: '/inject' },
      res => resolve(`status ${res.statusCode}`),
    )
    req.on('error', error => resolve(`error ${(error as NodeJS.ErrnoException).code}`))
    const chunk = Buffer.alloc(64 * 1024, ' ')
    const pump = (): void => {
      while (req.write(chunk)) if (req.destroyed) return
      req.once('drain', pump)
    }
    pump()
  })
  t.match(outcome, /^(status 413|error (ECONNRESET|EPIPE))$/, `a stream over the bound: ${outcome}`)
  t.match(events.slice(before), [{ event: 'request-refused', fields: { status: 413 } }], 'logged')
  t.equal((await call(webhook.port, ca.cert, good)).status, 200, '... and the next review is answered')
})

t.test('a request that does not arrive in time is cut off', async t => {
  const closed = await new Promise<number>((resolve, reject) => {
    const started = Date.now()
    const socket = tlsConnect({ host: '127.0.0.1', port: webhook.port, servername: 'localhost', ca: ca.cert }, () => {
      socket.write('POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{')
    })
    socket.on('error', reject)
    socket.on('data', () => {})
    socket.on('close', () => resolve(Date.now() - started))
  })
  t.ok(closed < 10_000, `closed by the server after ${closed} ms (ISTIO_WEBHOOK_REQUEST_SECONDS=2)`)
})

t.test('a rotated certificate is served on new connections without a restart; a broken pair is not taken', async t => {
  const before = (await call(webhook.port, ca.cert, '', { path: '/healthz', method: 'GET' })).fingerprint
  const next = await makeServerCert(ca)
  // Half a rotation: a new certificate with the old key does not load, and the old pair stays in use.
  secretVolume(dir, { 'tls.crt': next.cert, 'tls.key': readFileSync(`${dir}/tls.key`, 'utf8') }, 2)
  webhook.reload()
  t.match(events.at(-1), { event: 'certificate-error' }, 'the mismatched pair is refused and logged')
  t.equal((await call(webhook.port, ca.cert, '', { path: '/healthz', method: 'GET' })).fingerprint, before, 'still the old certificate')
  secretVolume(dir, { 'tls.crt': next.cert, 'tls.key': next.key }, 3)
  let now = before
  for (let i = 0; i < 50 && now === before; i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    now = (await call(webhook.port, ca.cert, '', { path: '/healthz', method: 'GET' })).fingerprint
  }
  t.not(now, before, 'the new certificate is served, by the same process on the same port')
  t.match(
    [...events].reverse().find(e => e.event === 'certificate'),
    { fields: { fingerprint: now } },
    'and its fingerprint logged',
  )
  t.equal((await call(webhook.port, ca.cert, JSON.stringify(RECORDED))).status, 200, 'reviews go on')
})

t.test('`entrypoint webhook` serves with settings from flags and env, and stops on SIGTERM', async t => {
  const cert = await makeServerCert(ca)
  const own = mkdtempSync(`${tmpdir()}/sr-webhook-cli-`)
  t.teardown(() => rmSync(own, { recursive: true, force: true }))
  writeFileSync(`${own}/c.pem`, cert.cert)
  writeFileSync(`${own}/k.pem`, cert.key)
  const cli = new URL('../../../dist/cli.mjs', import.meta.url).pathname
  const free = await new Promise<number>(resolve => {
    const probe = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  // Without tap's hooks, as the image runs it.
  const [file, ...args] = untapped(
    process.execPath,
    cli,
    'webhook',
    '--webhook-port',
    String(free),
    '--webhook-cert',
    `${own}/c.pem`,
    '--webhook-key',
    `${own}/k.pem`,
  )
  const child = startProcess(file, args, {
    PATH: process.env['PATH'],
    ISTIO_LOG_FORMAT: 'json',
    ISTIO_INJECT_MODE: 'cni',
  })
  t.teardown(() => child.stop())
  const listening = await child.waitForLine(line => line.includes('"event":"listening"'), 10_000)
  const port = Number(/listening on port (\d+)/.exec(listening)![1])
  t.equal(port, free)
  const response = responseOf(await call(port, ca.cert, JSON.stringify(RECORDED)))
  const patched = applyPatch(deepClone(RECORDED['request'].object), patchOf(response), true).newDocument
  t.equal(patched.spec.initContainers[0].name, 'sidecar-redirect-validate', 'ISTIO_INJECT_MODE reached it')
  const line = await child.waitForLine(l => l.includes('"event":"admission"'), 5_000)
  t.match(
    JSON.parse(line),
    { event: 'admission', decision: 'injected', uid: RECORDED['request'].uid, namespace: 'shop', status: 200 },
    'one JSON line per decision',
  )
  process.kill(child.pid, 'SIGTERM')
  t.equal(await child.exited, 0, 'exit 0 on SIGTERM')
})
