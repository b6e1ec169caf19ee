// The supervisor with real child processes (small shell scripts), no privileges needed.
import t from 'tap'
import { spawnInherited } from '../../src/backend/processes.js'
import { backoffMs, supervise } from '../../src/agent/supervise.js'
import { createLogger } from '../../src/log.js'

const quiet = () => {
  const events: string[] = []
  return { events, logger: createLogger('json', { write: s => void events.push(s), error: s => void events.push(s) }) }
}

t.test('backoff doubles from 100 ms and stops at 5 s', async t => {
  t.same([1, 2, 3, 4, 5, 6, 7, 8].map(backoffMs), [100, 200, 400, 800, 1600, 3200, 5000, 5000])
})

t.test('exits with the proxy exit code when not restarting', async t => {
  const { logger } = quiet()
  t.equal(await supervise({ command: 'sh', args: ['-c', 'exit 7'], restart: 'no', spawn: spawnInherited, logger, now: () => performance.now() }), 7)
})

t.test('restarts a failing proxy until it succeeds, logging each restart', async t => {
  const dir = t.testdir({})
  const script = `n=$(cat ${dir}/n 2>/dev/null || echo 0); echo $((n+1)) > ${dir}/n; [ "$n" -ge 2 ]`
  const { events, logger } = quiet()
  const code = await supervise({ command: 'sh', args: ['-c', script], restart: 'on-failure', spawn: spawnInherited, logger, now: () => performance.now() })
  t.equal(code, 0)
  const restarts = events.map(e => JSON.parse(e) as { event: string; delayMs?: number }).filter(e => e.event === 'restart')
  t.same(restarts.map(r => r.delayMs), [100, 200])
})

t.test('a signal to the agent is passed on and ends supervision as the proxy ended', async t => {
  const { logger } = quiet()
  const running = supervise({ command: 'sleep', args: ['30'], restart: 'on-failure', spawn: spawnInherited, logger, now: () => performance.now() })
  await new Promise(resolve => setTimeout(resolve, 200))
  process.emit('SIGTERM', 'SIGTERM')
  t.equal(await running, 143, 'sleep was killed by SIGTERM: 128+15, and not restarted')
})
