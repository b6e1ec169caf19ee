// The agent's classifier client against a scripted classifier on a unix socket (no root): "busy" is asked again
// with backoff until the deadline, anything else is final, and the deadline bounds the whole request.
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import { requestClassification, TIMEOUT_MS } from '../../../src/classifier/client.js'
import type { Reply } from '../../../src/classifier/protocol.js'

/**
 * A classifier that answers the n-th connection with replies[n] (the last one again after the end); 'drop' closes
 * it at once, unread, as a classifier that answered on accepting and closed before the request came.
 */
const scripted = async (t: Test, replies: readonly (Reply | 'drop')[]): Promise<{ socket: string; asked: () => number }> => {
  const dir = mkdtempSync(`${tmpdir()}/sr-client-`)
  const socket = `${dir}/c.sock`
  let asked = 0
  const server = net.createServer(connection => {
    const reply = replies[Math.min(asked, replies.length - 1)]!
    asked += 1
    if (reply === 'drop') return void connection.destroy()
    connection.once('data', () => connection.end(`${JSON.stringify(reply)}\n`))
  })
  await new Promise<void>(resolve => server.listen(socket, resolve))
  t.teardown(() => {
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { socket, asked: () => asked }
}

const BUSY: Reply = { ok: false, error: 'busy: 4 requests of this peer are being served; try again', busy: true }

t.test('"busy" is asked again, and the next answer counts', async t => {
  const { socket, asked } = await scripted(t, [BUSY, BUSY, BUSY, { ok: false, error: 'classid 0x2a is not allowed' }])
  await t.rejects(requestClassification(socket, 42), { message: /refused: classid 0x2a is not allowed$/ })
  t.equal(asked(), 4, 'three busy answers, then the final one')
})

t.test('a refusal that is not "busy" is final: asked once', async t => {
  const { socket, asked } = await scripted(t, [{ ok: false, error: 'UID 1000 is not an allowed proxy UID (1337)' }])
  await t.rejects(requestClassification(socket, 42), { message: /refused: UID 1000 is not an allowed proxy UID/ })
  t.equal(asked(), 1)
})

t.test('always "busy": the client gives up at the deadline it was given and says so', async t => {
  const { socket, asked } = await scripted(t, [BUSY])
  const started = Date.now()
  await t.rejects(requestClassification(socket, 42, undefined, 1500), { message: /refused: busy: .* \(still busy after 1500 ms\)$/ })
  const took = Date.now() - started
  // Not before its deadline (less the last exchange's room); the upper bound only tells it from the default
  // deadline, so that a loaded machine has seconds of slack.
  t.ok(took >= 1400 && took < TIMEOUT_MS, `gave up after ${took} ms, having used its deadline of 1500 ms, not the default ${TIMEOUT_MS} ms`)
  // Backing off: asked again, but not in a tight loop (without the waits it asks thousands of times).
  t.ok(asked() >= 2 && asked() <= 30, `asked ${asked()} times meanwhile`)
})

t.test('a connection closed before the request went out (EPIPE, ECONNRESET) is asked again', async t => {
  const { socket, asked } = await scripted(t, ['drop', 'drop', 'drop', { ok: false, error: 'classid 0x2a is not allowed' }])
  await t.rejects(requestClassification(socket, 42), { message: /refused: classid 0x2a is not allowed$/ })
  t.equal(asked(), 4)
})
