// Golden payloads: the exact text `plan` prints (and init sends) per scenario, and for the same settings the
// native nft table and the explicit method's ipset payload. Regenerate with UPDATE_GOLDEN=1 and review the diff
// like code. The kernel test applies every scenario on every backend and reads it back, so they cannot drift
// from what the kernel accepts and prints.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { renderPlanText } from '../../src/commands/plan.js'
import { buildPlan } from '../../src/plan/build.js'
import { renderIpsetSwap } from '../../src/plan/render-ipset.js'
import { renderNftTable } from '../../src/plan/render-nft.js'
import { parseSettings } from '../../src/settings/parse.js'
import { FAMILIES } from '../../src/settings/types.js'
import { GOLDEN_DIR, readEnvFile } from '../helpers/golden.js'

const cases = readdirSync(GOLDEN_DIR).filter(f => f.endsWith('.env'))

t.test('there are golden cases', async t => t.ok(cases.length >= 6))

const matchesGolden = (t: Test, path: string, text: string): void => {
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(path, text)
  t.equal(text, readFileSync(path, 'utf8'), path.slice(GOLDEN_DIR.length + 1))
}

for (const file of cases) {
  const name = file.replace(/\.env$/, '')
  t.test(`golden plan: ${name}`, async t => {
    const settings = parseSettings(readEnvFile(`${GOLDEN_DIR}/${file}`))
    matchesGolden(t, `${GOLDEN_DIR}/${name}.rules`, renderPlanText(settings))
    // The native backend's table, and the explicit method's sets for the iptables backends.
    const plan = buildPlan(settings, settings.ipv6 === 'false' ? ['ipv4'] : FAMILIES)
    matchesGolden(t, `${GOLDEN_DIR}/${name}.nft`, renderNftTable(plan))
    const sets = plan.families.flatMap(f => f.sets)
    if (sets.length > 0) matchesGolden(t, `${GOLDEN_DIR}/${name}.ipset`, renderIpsetSwap(sets))
  })
}
