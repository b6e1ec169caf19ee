// The exec seam's time limit holds whatever the program does: it runs in a process group of its own, the group is
// killed at the timeout, and our ends of its pipes are closed, so neither a child it forked nor one that left the
// group can keep init waiting. Plain processes, no root needed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t from 'tap'
import { realExec } from '../../../src/exec/exec.js'
import { EnvironmentError } from '../../../src/errors.js'
import { ended, isEnded } from '../../helpers/processes.js'

const TIMEOUT_MS = 500
// SIGTERM, then SIGKILL a second later, then the event loop on a loaded machine: short beside the hour a hold lasts.
const GRACE_MS = 10_000

const dir = mkdtempSync(`${tmpdir()}/sr-exec-`)
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const rows = [
  { name: 'a shell that waits on a sleep it forked', script: 'sleep 3600 & echo $! > "$0"; wait', killed: true },
  { name: 'a program that exits while a child it started holds its output', script: 'sleep 3600 & echo $! > "$0"; exit 0', killed: true },
  { name: 'a child that ignores SIGTERM', script: 'trap \'\' TERM; sleep 3600 & echo $! > "$0"; wait', killed: true },
  // setsid: the child leaves the group, so no signal of ours reaches it; closing the pipes still frees init.
  {
    name: 'a child that left the process group and holds the pipes',
    script: 'setsid sh -c \'echo $$ > "$0"; exec sleep 3600\' "$0" & wait',
    killed: false,
  },
] as const

for (const [i, row] of rows.entries()) {
  t.test(`${row.name}: the call ends within the timeout plus a short grace, as a named timeout`, async t => {
    const pidFile = `${dir}/pid-${i}`
    const started = Date.now()
    const error = await realExec('sh', ['-c', row.script, pidFile], undefined, { timeoutMs: TIMEOUT_MS }).catch((e: unknown) => e)
    const took = Date.now() - started
    t.type(error, EnvironmentError)
    t.match(
      (error as Error).message,
      /^sh -c .* \(given no input\) was still running after 0\.5 s \(ISTIO_EXEC_TIMEOUT\) and was killed with its process group$/,
    )
    t.ok(took < TIMEOUT_MS + GRACE_MS, `ended after ${took} ms (a hold would last an hour)`)
    const pid = Number(readFileSync(pidFile, 'utf8').trim())
    t.ok(pid > 0, 'the child wrote its PID')
    if (row.killed) t.ok(await ended(pid), `the forked child ${pid} was killed with the group`)
    else {
      t.notOk(isEnded(pid), 'the child that left the group still runs (nothing of ours can reach it) ...')
      process.kill(pid, 'SIGKILL')
    }
  })
}

t.test('a program that finishes in time is unaffected: its output, its exit status', async t => {
  t.same(await realExec('sh', ['-c', 'echo out; echo err >&2'], undefined, { timeoutMs: 5000 }), { stdout: 'out\n', stderr: 'err\n' })
  await t.rejects(realExec('sh', ['-c', 'exit 3'], undefined, { timeoutMs: 5000 }), { message: /exited with 3/ })
})
