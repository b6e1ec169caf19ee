// Writes the chart's generated pieces from the settings table (src/settings/chart.ts) and package.json: the env
// template (templates/_settings.tpl), the schema's entries for those values, and Chart.yaml's version and
// appVersion. The chart tests fail while what is committed differs from what this writes.
// Usage: npm run chart:gen
import { readFileSync, writeFileSync } from 'node:fs'
import { build } from 'esbuild'

const ROOT = new URL('../', import.meta.url)
const CHART = new URL('charts/sidecar-redirect/', ROOT)

// The table is TypeScript: bundle the one module in memory and load it.
const bundled = await build({
  entryPoints: [new URL('src/settings/chart.ts', ROOT).pathname],
  bundle: true,
  platform: 'node',
  format: 'esm',
  write: false,
})
const { chartFiles } = await import(`data:text/javascript;base64,${Buffer.from(bundled.outputFiles[0].text).toString('base64')}`)

const read = name => readFileSync(new URL(name, CHART), 'utf8')
const { version } = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8'))
const files = chartFiles(version, { 'Chart.yaml': read('Chart.yaml'), 'values.schema.json': read('values.schema.json') })
for (const [name, text] of Object.entries(files)) {
  const changed = (() => {
    try {
      return read(name) !== text
    } catch {
      return true
    }
  })()
  if (changed) writeFileSync(new URL(name, CHART), text)
  console.log(`${changed ? 'wrote' : 'unchanged'} charts/sidecar-redirect/${name}`)
}
