// Golden payloads: the exact text `plan` prints (and init sends) per scenario. Regenerate with UPDATE_GOLDEN=1 and
// review the diff like code. The kernel test feeds every one of them to iptables-restore, so they cannot drift
// from what the kernel accepts.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { renderPlanText } from '../../src/commands/plan.js'
import { parseSettings } from '../../src/settings/parse.js'
import { GOLDEN_DIR, readEnvFile } from '../helpers/golden.js'

const cases = readdirSync(GOLDEN_DIR).filter(f => f.endsWith('.env'))

t.test('there are golden cases', async t => t.ok(cases.length >= 6))

for (const file of cases) {
  const name = file.replace(/\.env$/, '')
  t.test(`golden plan: ${name}`, async t => {
    const text = renderPlanText(parseSettings(readEnvFile(`${GOLDEN_DIR}/${file}`)))
    const goldenPath = `${GOLDEN_DIR}/${name}.rules`
    if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(goldenPath, text)
    t.equal(text, readFileSync(goldenPath, 'utf8'))
  })
}
