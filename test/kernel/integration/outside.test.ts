// What stays outside capture by design, and what happens to it, shown with real connections on every backend (the
// list in docs/capture.md): a connection opened before init while conntrack was already in use in the pod keeps going
// uncaptured (NAT decides a connection on its first packet only; without conntrack in use it is picked up
// mid-stream, redirected, and breaks); a socket bound to a captured interface is captured but cannot be delivered
// to the proxy's loopback address, so its connection fails; an IPv6 link-local destination is the same.
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import type { Started } from '../../../src/exec/processes.js'
import { initOk, kernelAvailable, REMOTE, REMOTE6, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectCaptured } from '../../helpers/traffic.js'

const ECHO = "require('node:net').createServer(c => c.pipe(c)).listen({ host: '::', port: 9191 }, () => console.log('listening'))"
// Connects, says so, and on each SIGUSR1 sends a line and prints what comes back (or how the connection ended).
const CLIENT = `const c = require('node:net').connect({ host: process.argv[1], port: 9191 }, () => console.log('connected'))
c.on('data', d => console.log('echo ' + String(d).trim()))
c.on('error', e => console.log('error ' + e.code))
c.on('close', () => console.log('closed'))
process.on('SIGUSR1', () => c.write('ping\\n'))`

const links = (box: Sandbox) => {
  const id = box.podNs.replace(/^sr-(\w+)-pod$/, '$1')
  return { pod: `sr${id}p`, remote: `sr${id}r` }
}

/** Sends a line on the open connection; resolves with what happened to it. */
const ping = async (client: Started): Promise<string> => {
  const seen = client.lines.length
  process.kill(client.pid, 'SIGUSR1')
  const fresh = (): string | undefined => client.lines.slice(seen).find(l => /^(echo|error|closed)/.test(l))
  // Any outcome ends the wait (a broken connection is reset at once): the bound is for a hang, not for speed.
  await client.waitForLine(() => fresh() !== undefined, 30_000).catch(() => undefined)
  return fresh() ?? 'no answer'
}

const openBeforeInit = async (t: Test, box: Sandbox): Promise<Started> => {
  const client = box.start('pod', process.execPath, ['-e', CLIENT, REMOTE])
  await client.waitForLine(l => l === 'connected')
  t.equal(await ping(client), 'echo ping', 'before init the connection reaches the remote')
  return client
}

for (const backend of BACKENDS) {
  t.test(`${backend}: a connection open before init, with conntrack already in use, keeps going uncaptured`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.serve('pod', ['proxy=[::]:5001'])
    await box.serve('remote', ['remote=[::]:9090'])
    await box.start('remote', process.execPath, ['-e', ECHO]).waitForLine(l => l === 'listening')
    // Something in the pod uses conntrack already (a stateful filter rule): the connection has an entry from its start.
    await box.exec(
      'pod',
      'nft',
      ['-f', '-'],
      'table inet other {\n  chain c { type filter hook output priority 0; ct state established counter; }\n}\n',
    )
    const client = await openBeforeInit(t, box)
    await initOk(t, box, { ISTIO_BACKEND: backend })
    t.equal(await ping(client), 'echo ping', 'after init it still reaches the remote: outside capture')
    await expectCaptured(t, box, { from: 'pod', host: REMOTE, port: 9090 })
  })

  t.test(`${backend}: without conntrack in use before init, such a connection is picked up mid-stream and breaks`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.serve('pod', ['proxy=[::]:5001'])
    await box.start('remote', process.execPath, ['-e', ECHO]).waitForLine(l => l === 'listening')
    const client = await openBeforeInit(t, box)
    await initOk(t, box, { ISTIO_BACKEND: backend })
    const after = await ping(client)
    t.not(after, 'echo ping', `after init it no longer reaches the remote (${after})`)
  })

  t.test(`${backend}: a socket bound to a captured interface, or to an IPv6 link-local destination, fails: captured, undeliverable`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.serve('pod', ['proxy=[::]:5001'])
    await box.serve('remote', ['remote=[::]:9090'])
    await initOk(t, box, { ISTIO_BACKEND: backend })
    for (const host of [REMOTE, REMOTE6]) {
      const bound = await box.connect('pod', host, 9090, { device: links(box).pod })
      t.same([bound.ok, bound.reply?.label], [false, undefined], `bound to ${links(box).pod} -> ${host}:9090: no answer from anyone`, { bound })
    }
    const linkLocal = /inet6 (fe80::[0-9a-f:]+)\//.exec(
      (await box.exec('remote', 'ip', ['-6', 'addr', 'show', 'dev', links(box).remote])).stdout,
    )?.[1]
    t.ok(linkLocal, "the remote's link-local address")
    const scoped = await box.connect('pod', `${linkLocal}%${links(box).pod}`, 9090)
    t.same([scoped.ok, scoped.reply?.label], [false, undefined], `${linkLocal}%${links(box).pod}:9090: no answer from anyone`, { scoped })
    // Excluded as a CIDR, link-local goes out as any excluded destination does.
    await initOk(t, box, { ISTIO_BACKEND: backend, ISTIO_OUTBOUND_EXCLUDE_CIDRS: 'fe80::/10' })
    const excluded = await box.connect('pod', `${linkLocal}%${links(box).pod}`, 9090)
    t.equal(excluded.reply?.label, 'remote', 'with fe80::/10 excluded it reaches the remote', { excluded })
  })
}
