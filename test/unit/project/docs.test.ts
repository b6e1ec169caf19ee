// The user documentation under docs/ is checked against the code, as the README's first lines are in
// readme.test.ts: every setting, command and exit code has its row in the reference, every exit code and CNI
// error code its entry in troubleshooting, and no relative link points at a file or heading that is not there.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import t from 'tap'
import { COMMANDS } from '../../../src/cli.js'
import { CNI_CODES, PLUGIN_CODE_BASE } from '../../../src/cni/result.js'
import { INJECT_OPTIONS, WEBHOOK_OPTIONS } from '../../../src/settings/inject-options.js'
import {
  AGENT_OPTIONS,
  CLASSIFIER_OPTIONS,
  CNI_INSTALL_OPTIONS,
  NODE_AGENT_OPTIONS,
  OPTIONS,
  VALIDATE_OPTIONS,
} from '../../../src/settings/options.js'

const ROOT = new URL('../../..', import.meta.url).pathname
const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8')
const reference = read('docs/reference.md')
const troubleshooting = read('docs/troubleshooting.md')

// Read from the source, not a list kept here: a new error class is checked the day it is written.
const EXIT_CODES: ReadonlyArray<{ code: string; exitCode: number }> = [
  ...read('src/errors.ts').matchAll(/readonly code = '(E_[A-Z_]+)'\s+readonly exitCode = (\d+)/g),
].map(([, code, exitCode]) => ({ code: code ?? '', exitCode: Number(exitCode) }))

t.test('the error classes are all read', async t => {
  t.ok(EXIT_CODES.length >= 9, `${EXIT_CODES.length} error classes`)
  t.ok(EXIT_CODES.some(e => e.code === 'E_NOT_CAPTURED' && e.exitCode === 9))
})

t.test('the reference has a row for every setting: env, flag and default', async t => {
  for (const spec of [
    ...Object.values(OPTIONS),
    ...Object.values(AGENT_OPTIONS),
    ...Object.values(CLASSIFIER_OPTIONS),
    ...Object.values(NODE_AGENT_OPTIONS),
    ...Object.values(VALIDATE_OPTIONS),
    ...Object.values(CNI_INSTALL_OPTIONS),
    ...Object.values(INJECT_OPTIONS),
    ...Object.values(WEBHOOK_OPTIONS),
  ]) {
    const shown = spec.default === '' ? 'empty' : `\`${spec.default}\``
    t.ok(reference.includes(`| \`${spec.env}\` | \`--${spec.flag}\` | ${shown} |`), spec.env)
  }
})

t.test('the reference has a row for every command and every exit code', async t => {
  for (const name of Object.keys(COMMANDS)) t.ok(reference.includes(`| \`${name}\` |`), name)
  for (const { code, exitCode } of EXIT_CODES) t.ok(reference.includes(`| ${exitCode} | \`${code}\` |`), code)
  t.ok(reference.includes('| 1 | |'), 'exit 1, a bug')
})

t.test('troubleshooting has an entry for every exit code and every CNI error code', async t => {
  for (const { code, exitCode } of EXIT_CODES) t.match(troubleshooting, new RegExp(`^### Exit ${exitCode}: \`${code}\``, 'm'), code)
  t.match(troubleshooting, /^### Exit 1: /m, 'exit 1')
  for (const [name, code] of Object.entries(CNI_CODES)) t.match(troubleshooting, new RegExp(`^### CNI code ${code}\\b`, 'm'), name)
  t.match(troubleshooting, /^### CNI code 11\b/m, 'the forwarder: the agent could not be asked')
  t.match(troubleshooting, new RegExp(`^### CNI code ${PLUGIN_CODE_BASE}\\+N\\b`, 'm'), 'our codes: 100 + the exit code')
  // Each entry says how to diagnose and how to fix.
  for (const entry of troubleshooting.split(/^### /m).slice(1)) {
    const title = entry.split('\n')[0]
    t.match(entry, /\*\*Diagnose\*\*/, `${title}: how to diagnose`)
    t.match(entry, /\*\*Fix\*\*/, `${title}: the fix`)
  }
})

// GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped, spaces as '-'.
const anchors = (markdown: string): Set<string> =>
  new Set(
    [...markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} (.+)$/gm)].map(([, heading]) =>
      (heading ?? '')
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    ),
  )

const markdownFiles = [
  'README.md',
  'CONTRIBUTING.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter(f => f.endsWith('.md'))
    .map(f => `docs/${f}`),
]

t.test("every relative link in the README, CONTRIBUTING.md, docs/ and the chart's README resolves, to a heading that exists", async t => {
  for (const file of [...markdownFiles, 'charts/sidecar-redirect/README.md']) {
    const text = read(file).replace(/^```[\s\S]*?^```/gm, '')
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^[a-z]+:/.test(target)) continue
      const [path, anchor] = target.split('#') as [string, string | undefined]
      const resolved = path === '' ? file : relative(ROOT, join(ROOT, dirname(file), path))
      t.ok(existsSync(join(ROOT, resolved)), `${file}: ${target}`)
      if (anchor && resolved.endsWith('.md') && existsSync(join(ROOT, resolved))) t.ok(anchors(read(resolved)).has(anchor), `${file}: ${target}`)
    }
  }
})

t.test('the README links every page of docs/, and CONTRIBUTING.md', async t => {
  const readme = read('README.md')
  for (const file of markdownFiles.filter(f => f !== 'README.md')) t.ok(readme.includes(`](${file})`), file)
})
