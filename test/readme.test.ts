// The README's tables are checked against the code, so the documentation cannot fall behind it.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { COMMANDS } from '../src/cli.js'
import {
  ApplyError,
  ClassifierError,
  ConfigError,
  EnvironmentError,
  NotReadyError,
  PrivilegeError,
  RefusedError,
  VerifyError,
} from '../src/errors.js'
import { INJECT_OPTIONS, WEBHOOK_OPTIONS } from '../src/settings/inject-options.js'
import { AGENT_OPTIONS, CLASSIFIER_OPTIONS, CNI_INSTALL_OPTIONS, NODE_AGENT_OPTIONS, OPTIONS, VALIDATE_OPTIONS } from '../src/settings/options.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('every setting has its row: env, flag and default', async t => {
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
    t.ok(readme.includes(`| \`${spec.env}\` | \`--${spec.flag}\` | ${shown} |`), spec.env)
  }
})

t.test('every command and exit code is documented', async t => {
  for (const name of Object.keys(COMMANDS)) t.ok(readme.includes(`| \`${name}\` |`), name)
  const errors = [
    new ConfigError('X', '', ''),
    new EnvironmentError(''),
    new ApplyError(''),
    new VerifyError(''),
    new PrivilegeError(''),
    new ClassifierError(''),
    new NotReadyError(''),
    new RefusedError(''),
  ]
  for (const error of errors) t.ok(readme.includes(`| ${error.exitCode} | \`${error.code}\` |`), error.code)
})

t.test('the README starts with the two set-up commands, and they exist', async t => {
  const first = readme.split('\n').slice(0, 6).join('\n')
  t.match(first, /^bash scripts\/demo\.sh/m)
  t.match(first, /^bash \.ci\/run/m)
})
