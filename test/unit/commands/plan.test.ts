// Golden payloads: the exact text `plan` prints (and init sends) per scenario, for the iptables backends (.rules,
// with the ipset payload where the method uses sets) and for native nftables (.nft). Regenerate with
// UPDATE_GOLDEN=1 and review the diff like code. The kernel tests (test/kernel/integration/goldens/) apply every scenario with
// each backend and read it back exactly, so they cannot drift from what the kernel accepts and prints.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { renderPlanText } from '../../../src/commands/plan.js'
import { loadSettings } from '../../../src/settings/load.js'
import { readServicesFile } from '../../../src/settings/services-file.js'
import { GOLDEN_DIR, readEnvFile, readRoutesFile } from '../../helpers/golden.js'

const cases = readdirSync(GOLDEN_DIR).filter(f => f.endsWith('.env'))

t.test('there are golden cases', async t => t.ok(cases.length >= 6))

for (const file of cases) {
  const name = file.replace(/\.env$/, '')
  for (const [extension, backend] of [
    ['rules', {}],
    ['nft', { ISTIO_BACKEND: 'nftables' }],
  ] as const) {
    t.test(`golden plan: ${name}.${extension}`, async t => {
      const settings = await loadSettings({ ...readEnvFile(`${GOLDEN_DIR}/${file}`), ...backend }, {}, readServicesFile)
      const text = renderPlanText(settings, readRoutesFile(`${GOLDEN_DIR}/${file}`))
      const goldenPath = `${GOLDEN_DIR}/${name}.${extension}`
      if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(goldenPath, text)
      t.equal(text, readFileSync(goldenPath, 'utf8'))
    })
  }
}
