// The command line and the environment as a careless user types them: every mistake is one line naming it and what
// is valid. Only `plan` runs here (it changes nothing), through run() with captured output.
import t from 'tap'
import { COMMANDS } from '../../src/cli.js'
import type { Io } from '../../src/io.js'
import { createLogger } from '../../src/log.js'
import { run } from '../../src/main.js'
import { editDistance, findMisspelt } from '../../src/settings/misspelt.js'

const runCaptured = async (argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> => {
  let stdout = ''
  let stderr = ''
  const unused = (): never => {
    throw new Error('nothing may be run or read here')
  }
  const io: Io = {
    exec: unused,
    fs: { readFile: unused, readDir: unused, canOpenIpv6: unused, onPath: unused },
    lock: unused,
    now: () => 0,
    startedAt: 0,
    out: { write: text => void (stdout += text), error: text => void (stderr += text) },
  }
  const code = await run(argv, env, io)
  return { code, stdout, stderr }
}

t.test('an unknown command or flag is one line naming it and the valid ones, exit 2', async t => {
  const rows: [string[], RegExp][] = [
    [
      ['bogus'],
      /^sidecar-redirect: unknown command "bogus"; commands: init, plan, verify, clean, .*classifier, inject, uninject, webhook, hold, istio-iptables \[E_CONFIG\]\n$/,
    ],
    [['bogus', '--proxy-port', '5002'], /unknown command "bogus"/],
    [
      ['plan', '--proxy-prot', '5002'],
      /^sidecar-redirect: unknown flag "--proxy-prot"; plan's flags: --proxy-port, --proxy-uid, .*--help \[E_CONFIG\]\n$/,
    ],
    [['plan', '-x'], /unknown flag "-x"/],
    [['plan', 'init'], /unexpected argument "init" after the command plan/],
    [['bo\ngus\0'], /^sidecar-redirect: unknown command "bo\\ngus\\u0000"; commands: /],
  ]
  for (const [argv, expected] of rows) {
    const { code, stdout, stderr } = await runCaptured(argv)
    t.equal(code, 2, argv.join(' '))
    t.match(stderr, expected, JSON.stringify(argv))
    t.equal(stderr.split('\n').length, 2, '... on one line')
    t.equal(stdout, '', '... and nothing else happens')
  }
  for (const name of Object.keys(COMMANDS)) t.ok((await runCaptured(['bogus'])).stderr.includes(name), `${name} is listed`)
})

t.test('a misspelt ISTIO_* setting is a warning with a suggestion, in both log formats', async t => {
  const text = await runCaptured(['plan'], { ISTIO_PROXY_PROT: '5002' })
  t.equal(text.code, 0)
  t.equal(text.stderr, 'sidecar-redirect warning: ISTIO_PROXY_PROT is not a setting; did you mean ISTIO_PROXY_PORT?\n')
  t.match(text.stdout, /REDIRECT --to-ports 5001/, 'the default is used, as before, but not silently')
  const json = await runCaptured(['plan'], { ISTIO_OUTBOUD_METHOD: 'mark', ISTIO_LOG_FORMAT: 'json' })
  t.same(JSON.parse(json.stderr), {
    event: 'warning',
    message: 'ISTIO_OUTBOUD_METHOD is not a setting; did you mean ISTIO_OUTBOUND_METHOD?',
    variable: 'ISTIO_OUTBOUD_METHOD',
    suggestion: 'ISTIO_OUTBOUND_METHOD',
  })
})

t.test('ISTIO_STRICT_ENV=true makes a misspelt setting exit 2 before anything runs', async t => {
  const strict = await runCaptured(['plan'], { ISTIO_PROXY_PROT: '5002', ISTIO_STRICT_ENV: 'true' })
  t.equal(strict.code, 2)
  t.equal(strict.stderr, 'sidecar-redirect: ISTIO_PROXY_PROT is not a setting; did you mean ISTIO_PROXY_PORT? (ISTIO_STRICT_ENV=true) [E_CONFIG]\n')
  t.equal(strict.stdout, '')
  t.equal((await runCaptured(['plan', '--strict-env', 'true'], { ISTIO_PROXY_PROT: '1' })).code, 2, 'the flag works too')
})

t.test("other components' variables and far-off names are not warned about", async t => {
  const env = {
    ISTIO_META_PROXY_PORT: '1',
    ISTIO_META_CLUSTER_ID: 'x',
    ISTIO_VERSION: '1.20',
    ISTIO_PROXY_PORT: '5001',
    PROXY_PROT: '1',
  }
  t.same(findMisspelt(env), [])
  const quiet = await runCaptured(['plan'], { ...env, ISTIO_STRICT_ENV: 'true' })
  t.equal(quiet.code, 0)
  t.equal(quiet.stderr, '')
  t.same(
    findMisspelt({ ISTIO_PROXY_USR: '', 'ISTIO_PROXY_UI\n': '' }).map(m => m.message),
    ['"ISTIO_PROXY_UI\\n" is not a setting; did you mean ISTIO_PROXY_UID?', 'ISTIO_PROXY_USR is not a setting; did you mean ISTIO_PROXY_USER?'],
    'a name with a control character is quoted',
  )
  t.same([editDistance('kitten', 'sitting'), editDistance('', 'ab'), editDistance('abc', 'abc')], [3, 2, 0])
})

t.test('an error printed as text escapes control characters from whatever it quotes, so each part is one line', async t => {
  let printed = ''
  createLogger('text', { write: () => undefined, error: text => void (printed += text) }).error('E_X', 'tool said a\nb\0\t', ['cause: c\rd\te\n'])
  // A detail keeps its tabs (nft's diffs are indented with them): a tab breaks no line.
  t.equal(printed, 'sidecar-redirect: tool said a\\nb\\u0000\\t [E_X]\n  cause: c\\rd\te\\n\n')
})
