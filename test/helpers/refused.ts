// Refusals on real rules: every refused setting exits 2 with one line, and the kernel is left byte-identical.
// One backend per file of test/kernel/integration/refused/, so each stays well inside tap's time limit on a loaded machine.
import t from 'tap'
import { initOk, kernelAvailable, snapshot, withSandbox } from './kernel.js'
import { type IPTABLES_BACKENDS as BACKENDS, REFUSED } from './rows.js'

/** refusedTests runs the test on one backend. */
export const refusedTests = (backend: (typeof BACKENDS)[number]): void => {
  const env = { ISTIO_BACKEND: backend }

  t.test(`${backend}: every refused setting exits 2 with one line and leaves the kernel byte-identical`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await initOk(t, box, env)
    const before = await snapshot(box)
    const rows = Object.entries(REFUSED).flatMap(([variable, values]) => values.map(value => [variable, value] as const))
    // Four at a time: each row is a whole process start.
    for (let i = 0; i < rows.length; i += 4) {
      const batch = rows.slice(i, i + 4)
      const results = await Promise.all(batch.map(([variable, value]) => box.runInit({ ...env, [variable]: value })))
      for (const [j, result] of results.entries()) {
        const [variable, value] = batch[j]!
        t.equal(result.exitCode, 2, `${variable}=${JSON.stringify(value)} exits 2`)
        const lines = result.output.trim().split('\n')
        t.equal(lines.length, 1, 'one line', { output: result.output })
        t.ok(lines[0]?.includes(`${variable}=${JSON.stringify(value)} is not valid: expected`), 'names variable, value and what is accepted', {
          output: result.output,
        })
      }
    }
    t.equal(await snapshot(box), before, 'the ruleset is byte-identical after every refused run')
  })
}
