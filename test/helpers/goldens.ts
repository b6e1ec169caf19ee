// Every golden plan (test/golden/) on real rules: the kernel accepts it and it reads back exactly, on every backend.
// One backend per file of test/kernel/integration/goldens/, so each stays well inside tap's time limit on a loaded machine.
import { readdirSync } from 'node:fs'
import t from 'tap'
import { GOLDEN_DIR, readEnvFile } from './golden.js'
import { initOk, kernelAvailable, withSandbox } from './kernel.js'
import type { BACKENDS } from './rows.js'

/** goldenTests runs the test on one backend. */
export const goldenTests = (backend: (typeof BACKENDS)[number]): void => {
  t.test(`${backend}: every golden plan is accepted by the kernel and reads back exactly`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    for (const file of readdirSync(GOLDEN_DIR).filter(f => f.endsWith('.env'))) {
      const env = { ...readEnvFile(`${GOLDEN_DIR}/${file}`), ISTIO_BACKEND: backend }
      await initOk(t, box, env)
      await initOk(t, box, env, ['verify'])
    }
  })
}
