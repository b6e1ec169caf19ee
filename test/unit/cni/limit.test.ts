// The node agent's slots and its one-at-a-time per netns, on their own (no root): at most N works at once, the
// waiting ones start in arrival order (a newcomer never takes a slot someone waits for), one still waiting at its
// deadline is refused and leaves the line, and works of one key never overlap while other keys go on.
import t from 'tap'
import { createLimit, createSerial, QueueTimeout } from '../../../src/cni/limit.js'

/** A work that records its start and runs until released. */
const gate = () => {
  let open = (): void => undefined
  const opened = new Promise<void>(resolve => (open = resolve))
  return { open, opened }
}

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

t.test('at most N at once; the rest start in arrival order as slots free, a newcomer behind them', async t => {
  const limit = createLimit(2)
  const started: string[] = []
  const gates = new Map<string, ReturnType<typeof gate>>()
  const submit = (name: string) => {
    const g = gate()
    gates.set(name, g)
    return limit.run(async () => {
      started.push(name)
      await g.opened
      return name
    }, 60_000)
  }
  const runs = ['a', 'b', 'c', 'd', 'e'].map(submit)
  await tick()
  t.same(started, ['a', 'b'], 'two run')
  t.same([limit.running, limit.waiting], [2, 3], 'three wait')
  gates.get('b')?.open()
  await tick()
  // f arrives while c holds b's old slot and d, e wait: it goes behind them.
  const late = submit('f')
  await tick()
  t.same(started, ['a', 'b', 'c'], "b's slot went to c, the first in line")
  gates.get('a')?.open()
  await tick()
  t.same(started, ['a', 'b', 'c', 'd'], "a's went to d, not to f")
  for (const name of ['c', 'd', 'e', 'f']) {
    gates.get(name)?.open()
    await tick()
  }
  t.same(await Promise.all([...runs, late]), ['a', 'b', 'c', 'd', 'e', 'f'], 'each answered with its own result')
  t.same(started, ['a', 'b', 'c', 'd', 'e', 'f'], 'in arrival order')
  t.same([limit.running, limit.waiting], [0, 0], 'all slots free again')
})

t.test('a work that fails frees its slot; one waiting past its deadline is refused and leaves the line', async t => {
  const limit = createLimit(1)
  const held = gate()
  const first = limit.run(() => held.opened, 60_000)
  const refused = limit.run(async () => 'never', 50).catch((error: unknown) => error)
  const behind = limit.run(async () => 'after', 60_000)
  const error = await refused
  t.ok(error instanceof QueueTimeout, 'QueueTimeout')
  t.match((error as QueueTimeout).message, /busy: waited \d+(\.\d)? s for one of its 1 slots \(ISTIO_NODE_AGENT_CONCURRENCY\)/)
  t.equal(limit.waiting, 1, 'only the one behind it still waits')
  held.open()
  await first
  t.equal(await behind, 'after', 'the next in line runs')
  await t.rejects(
    limit.run(async () => {
      throw new Error('boom')
    }, 1000),
    /boom/,
  )
  t.equal(await limit.run(async () => 'free', 1000), 'free', 'the failed work gave its slot back')
  t.equal(limit.running, 0)
})

t.test('one work at a time per key, in order; other keys are not held up', async t => {
  const serial = createSerial()
  const log: string[] = []
  const first = gate()
  const a1 = serial.run('/run/netns/a', async () => {
    log.push('a1 start')
    await first.opened
    log.push('a1 end')
  })
  const a2 = serial.run('/run/netns/a', async () => void log.push('a2'))
  const b = serial.run('/run/netns/b', async () => void log.push('b'))
  await b
  await tick()
  t.same(log, ['a1 start', 'b'], 'b ran while a1 held its key; a2 waits')
  first.open()
  await Promise.all([a1, a2])
  t.same(log, ['a1 start', 'b', 'a1 end', 'a2'], 'a2 after a1')
  const failed = serial.run('/run/netns/a', async () => {
    throw new Error('boom')
  })
  await t.rejects(failed, /boom/)
  t.equal(await serial.run('/run/netns/a', async () => 'next'), 'next', 'a failure does not block the key')
})
