// SIGKILL at any moment leaves all or nothing of ours in every table. init (TPROXY and DNS capture: raw, mangle and
// nat, both families) is killed again and again at a random moment of its run, on every backend; once whatever it
// had started is done, each table holds exactly what a whole init puts there, or nothing of ours, never a part.
// (iptables commits table by table, so the tables of one family may differ; native nftables is one transaction.)
// TPROXY's policy rule and route are left aside: each is one `ip` command, and either alone routes nothing.
// Then clean leaves the namespace as it was, and the next round starts from there. One backend per file of
// test/kernel/integration/sigkill/, so each stays well inside tap's time limit on a loaded machine.
import t, { type Test } from 'tap'
import type { Sandbox } from '../../src/commands/sandbox.js'
import { realExec } from '../../src/exec/exec.js'
import { initOk, kernelAvailable, programs, snapshot, withSandbox } from './kernel.js'
import type { BACKENDS } from './rows.js'

const ROUNDS = Number(process.env['SR_SIGKILL_ROUNDS'] ?? 40)
const ENV = { ISTIO_DNS_CAPTURE: 'all', ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_CAPTURE_PORT: '15006', ISTIO_VERIFY: 'rules' }
const OURS = /sidecar-redirect\/|SIDECAR_/

type Backend = (typeof BACKENDS)[number]

/** Ours, per table (`ipv4 raw`, ..., or `inet sidecar_redirect`), as the tools print it, counters aside. */
const oursByTable = async (box: Sandbox, backend: Backend): Promise<Map<string, string>> => {
  const tables = new Map<string, string>()
  if (backend === 'nftables') {
    const ruleset = (await box.exec('pod', 'nft', ['list', 'ruleset'])).stdout
    const ours = /^table inet sidecar_redirect \{\n[\s\S]*?^\}\n/m.exec(ruleset)?.[0]
    if (ours) tables.set('inet sidecar_redirect', ours)
    return tables
  }
  for (const family of ['ipv4', 'ipv6'] as const) {
    const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend.replace('iptables-', '')}-save`
    const text = (await box.exec('pod', tool, [])).stdout
    for (const [, name, body] of text.matchAll(/^\*(\w+)\n([\s\S]*?)^COMMIT$/gm)) {
      const ours = (body ?? '').split('\n').filter(l => OURS.test(l))
      if (ours.length > 0) tables.set(`${family} ${name}`, ours.join('\n'))
    }
  }
  return tables
}

/** Waits until no process is left in the pod's namespace: what the killed init started may still be finishing. */
const settled = async (box: Sandbox): Promise<void> => {
  // Asked from outside the namespace, so the asking process is not one of them.
  // Bounded for a hang (a loaded machine may take seconds); a process still there then fails the round's read.
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    if ((await realExec('ip', ['netns', 'pids', box.podNs])).stdout.trim() === '') return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

const killedOnce = async (box: Sandbox, env: Record<string, string>, afterMs: number): Promise<void> => {
  const init = box.start('pod', process.execPath, [programs().cli, 'init'], env)
  const timer = setTimeout(() => {
    try {
      process.kill(init.pid, 'SIGKILL')
    } catch {
      // it had finished
    }
  }, afterMs)
  await init.exited
  clearTimeout(timer)
}

const roundsFor = async (t: Test, backend: Backend): Promise<void> => {
  const box = await withSandbox(t)
  const env = { ISTIO_BACKEND: backend, ...ENV }
  const pristine = await snapshot(box)
  // A whole init, timed from the spawn as the rounds are: what "all of ours" is, and the windows to kill in: the
  // whole run, and its writing phase (from the report's timings, which start at Node's start).
  const started = Date.now()
  const report = await box.runInit({ ...env, ISTIO_LOG_FORMAT: 'json' })
  const window = Date.now() - started
  t.equal(report.exitCode, 0, 'a whole init', { output: report.output })
  const timings = (JSON.parse(report.output.trim()) as { timings: Record<string, number> }).timings
  const applyAt = ['nodeStartMs', 'settingsMs', 'probeMs', 'planMs'].reduce((sum, k) => sum + (timings[k] ?? 0), 0)
  const applyMs = timings['applyMs'] ?? window
  const whole = await oursByTable(box, backend)
  await initOk(t, box, env, ['clean'])
  const seen = new Map<string, number>()
  for (let round = 0; round < ROUNDS; round++) {
    // Two rounds in three in the writing phase's later part (its first reads come first; a margin for the spawn),
    // the third anywhere in the run.
    const delay = round % 3 === 2 ? Math.random() * window : applyAt + applyMs * 0.3 + Math.random() * (applyMs * 0.7 + 30)
    await killedOnce(box, env, delay)
    await settled(box)
    const now = await oursByTable(box, backend)
    const partial = [...now].filter(([table, text]) => whole.get(table) !== text)
    if (partial.length > 0) t.fail(`round ${round}: part of ours in ${partial.map(([table]) => table).join(', ')}`, { now: Object.fromEntries(now) })
    const outcome = [...whole.keys()].map(table => `${table}=${now.has(table) ? 'all' : 'none'}`).join(' ')
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1)
    await initOk(t, box, { ...env }, ['clean'])
  }
  t.pass(
    `${ROUNDS} kills within the ${window} ms an init takes (writing from ${Math.round(applyAt)} ms for ${applyMs} ms), no table ever held part of ours`,
  )
  t.comment(`outcomes: ${[...seen].map(([o, n]) => `${n}x [${o}]`).join('; ')}`)
  if (backend !== 'iptables-legacy') t.equal(await snapshot(box), pristine, 'and clean left the namespace as it was')
}

/** sigkillTests runs the rounds on one backend. */
export const sigkillTests = (backend: Backend): void => {
  t.test(`${backend}: SIGKILL at a random moment of a TPROXY and DNS init leaves every table all or nothing of ours`, async t => {
    if (!kernelAvailable(t)) return
    await roundsFor(t, backend)
  })
}
