// The supervisor with real child processes (small shell scripts), no privileges needed.
import t from 'tap'
import { spawnInherited } from '../../../src/exec/processes.js'
import { backoffMs, supervise } from '../../../src/agent/supervise.js'
import { ConfigError } from '../../../src/errors.js'
import { createLogger } from '../../../src/log.js'
import { parseAgentSettings } from '../../../src/settings/parse.js'

const quiet = () => {
  const events: string[] = []
  return { events, logger: createLogger('json', { write: s => void events.push(s), error: s => void events.push(s) }) }
}

t.test('backoff doubles from 100 ms and stops at 5 s', async t => {
  t.same([1, 2, 3, 4, 5, 6, 7, 8].map(backoffMs), [100, 200, 400, 800, 1600, 3200, 5000, 5000])
})

t.test('exits with the proxy exit code when not restarting', async t => {
  const { logger } = quiet()
  t.equal(
    await supervise({
      command: 'sh',
      args: ['-c', 'exit 7'],
      restart: 'no',
      drainMs: 5000,
      spawn: spawnInherited,
      logger,
      now: () => performance.now(),
    }),
    7,
  )
})

t.test('restarts a failing proxy until it succeeds, logging each restart', async t => {
  const dir = t.testdir({})
  const script = `n=$(cat ${dir}/n 2>/dev/null || echo 0); echo $((n+1)) > ${dir}/n; [ "$n" -ge 2 ]`
  const { events, logger } = quiet()
  const code = await supervise({
    command: 'sh',
    args: ['-c', script],
    restart: 'on-failure',
    drainMs: 5000,
    spawn: spawnInherited,
    logger,
    now: () => performance.now(),
  })
  t.equal(code, 0)
  const restarts = events.map(e => JSON.parse(e) as { event: string; delayMs?: number }).filter(e => e.event === 'restart')
  t.same(
    restarts.map(r => r.delayMs),
    [100, 200],
  )
})

t.test('a signal to the agent is passed on and ends supervision as the proxy ended', async t => {
  const { logger } = quiet()
  const running = supervise({
    command: 'sleep',
    args: ['30'],
    restart: 'on-failure',
    drainMs: 5000,
    spawn: spawnInherited,
    logger,
    now: () => performance.now(),
  })
  await new Promise(resolve => setTimeout(resolve, 200))
  process.emit('SIGTERM', 'SIGTERM')
  t.equal(await running, 143, 'sleep was killed by SIGTERM: 128+15, and not restarted')
})

const drained = async (script: string, drainMs: number) => {
  const { events, logger } = quiet()
  const running = supervise({
    command: 'sh',
    args: ['-c', script],
    restart: 'on-failure',
    drainMs,
    spawn: spawnInherited,
    logger,
    now: () => performance.now(),
  })
  await new Promise(resolve => setTimeout(resolve, 300))
  const signalled = performance.now()
  process.emit('SIGTERM', 'SIGTERM')
  const code = await running
  const kinds = events.map(e => (JSON.parse(e) as { event: string }).event)
  return { code, tookMs: performance.now() - signalled, kinds }
}

t.test('a proxy that ignores SIGTERM is killed once the drain time is up: exit 137', async t => {
  // exec keeps the ignored disposition, so the process the agent started is the one that ignores it.
  const { code, tookMs, kinds } = await drained('trap "" TERM; exec sleep 30', 600)
  t.equal(code, 137, '128 + SIGKILL')
  t.ok(tookMs >= 550 && tookMs < 5000, `killed ${Math.round(tookMs)} ms after SIGTERM, the drain time being 600 ms`)
  t.same(kinds.slice(-3), ['signal', 'drain', 'exit'], 'the kill is logged between the signal and the exit')
})

t.test('a proxy that drains and exits is waited for, and its exit code is the agent’s', async t => {
  const { code, tookMs, kinds } = await drained('trap "sleep 0.5; exit 3" TERM; while :; do sleep 0.05; done', 10_000)
  t.equal(code, 3, 'the code the proxy chose')
  t.ok(tookMs >= 450, `waited ${Math.round(tookMs)} ms for its drain`)
  t.notOk(kinds.includes('drain'), 'not killed')
})

t.test('SIGHUP is passed on without starting a drain', async t => {
  const { events, logger } = quiet()
  const running = supervise({
    command: 'sh',
    args: ['-c', 'trap "exit 0" HUP; while :; do sleep 0.05; done'],
    restart: 'no',
    drainMs: 0,
    spawn: spawnInherited,
    logger,
    now: () => performance.now(),
  })
  await new Promise(resolve => setTimeout(resolve, 300))
  process.emit('SIGHUP', 'SIGHUP')
  t.equal(await running, 0, 'the proxy handled it itself: no SIGKILL even with a drain time of 0')
  t.notOk(events.some(e => e.includes('"drain"')))
})

t.test('ISTIO_DRAIN_SECONDS: 20 by default, whole seconds up to an hour, anything else refused naming it', async t => {
  t.equal(parseAgentSettings({}).drainSeconds, 20)
  t.equal(parseAgentSettings({ ISTIO_DRAIN_SECONDS: '0' }).drainSeconds, 0)
  for (const value of ['-1', '1.5', '3601', 'soon', '']) {
    t.throws(
      () => parseAgentSettings({ ISTIO_DRAIN_SECONDS: value }),
      new ConfigError('ISTIO_DRAIN_SECONDS', value, 'whole seconds from 0 to 3600'),
      JSON.stringify(value),
    )
  }
})
