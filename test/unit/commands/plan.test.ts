// Golden payloads: the exact text `plan` prints (and init sends) per scenario, for the iptables backends (.rules,
// with the ipset payload where the method uses sets) and for native nftables (.nft). Regenerate with
// UPDATE_GOLDEN=1 and review the diff like code. The kernel tests (test/kernel/integration/goldens/) apply every scenario with
// each backend and read it back exactly, so they cannot drift from what the kernel accepts and prints.
// Beside them: plan and init choose their backend in one place, so plan prints the backend init's own preparation
// picks on the same host, and the payload that backend renders (through fakes: nothing runs, only /proc is looked at).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { renderPlanText, runPlan } from '../../../src/commands/plan.js'
import t from 'tap'
import { loadSettings } from '../../../src/settings/load.js'
import { readServicesFile } from '../../../src/settings/services-file.js'
import { GOLDEN_DIR, readEnvFile, readRoutesFile } from '../../helpers/golden.js'
import { prepare } from '../../../src/commands/prepare.js'
import { EnvironmentError } from '../../../src/errors.js'
import type { Io } from '../../../src/io.js'
import { parseSettings } from '../../../src/settings/parse.js'

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
      const text = renderPlanText(settings, readRoutesFile(`${GOLDEN_DIR}/${file}`), extension === 'nft' ? 'nftables' : 'nft')
      const goldenPath = `${GOLDEN_DIR}/${name}.${extension}`
      if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(goldenPath, text)
      t.equal(text, readFileSync(goldenPath, 'utf8'))
    })
  }
}

const hostIo = (tableNames: string | undefined | 'refused', printed: string[]): Io => ({
  exec: async (file, args) => {
    throw new Error(`nothing may run here: ${file} ${args.join(' ')}`)
  },
  fs: {
    readFile: async path => {
      if (!path.endsWith('_tables_names')) return undefined
      if (tableNames === 'refused') throw new EnvironmentError(`cannot read ${path}: permission denied`)
      return tableNames
    },
    readDir: async () => [],
    canOpenIpv6: async () => true,
    onPath: async program => program === 'nft' || tableNames !== undefined,
  },
  lock: async () => async () => undefined,
  now: () => 0,
  startedAt: 0,
  out: { write: text => void printed.push(text), error: () => undefined },
})

const ROWS = [
  { name: 'a kernel with x_tables and no legacy tables', tableNames: '', backend: 'iptables-nft', payload: /^# ipv4: iptables-restore --noflush$/m },
  { name: 'a kernel without x_tables, nft on PATH', tableNames: undefined, backend: 'nftables', payload: /^# nft -f -$/m },
] as const

for (const row of ROWS) {
  t.test(`${row.name}: plan names the backend init prepares, and prints its payload`, async t => {
    const printed: string[] = []
    const settings = parseSettings({})
    await runPlan(settings, hostIo(row.tableNames, printed))
    const prepared = await prepare(settings, hostIo(row.tableNames, []))
    t.equal(prepared.backend.name, row.backend, 'init prepares this backend')
    t.match(printed.join(''), new RegExp(`^# backend: ${row.backend}: `), 'plan names the same one, first')
    t.match(printed.join(''), row.payload)
    t.equal(
      printed.join('').split('\n').slice(1).join('\n'),
      prepared.backend.render(prepared.plan),
      "the rest is that backend's render, as init sends it",
    )
  })
}

t.test('a set backend is taken without a look; a host that may not be looked at is said to be assumed', async t => {
  const printed: string[] = []
  await runPlan(parseSettings({ ISTIO_BACKEND: 'iptables-legacy' }), hostIo('refused', printed))
  t.match(printed.join(''), /^# backend: iptables-legacy: set by ISTIO_BACKEND\n/)
  const assumed: string[] = []
  await runPlan(parseSettings({}), hostIo('refused', assumed))
  t.match(assumed.join(''), /^# backend: iptables-nft: assumed: this host could not be looked at \(cannot read \S+: permission denied\)/)
})
