// First contact with the CLI, through the real process as a user meets it: the built bundle, its own stdout and
// stderr (pipes that close early included), and the kernel's own refusals in throwaway network namespaces
// (`unshare -n`: the namespace goes when the process does, so runs side by side cannot meet).
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { COMMANDS, commandFlags } from '../../src/cli.js'
import { ISTIO_NAMES } from '../../src/settings/istio-names.js'
import { kernelAvailable, programs } from '../helpers/kernel.js'
import { untapped, untappedCall } from '../helpers/processes.js'

const CLI = new URL('../../dist/cli.mjs', import.meta.url).pathname

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

// A clean env: tap's NODE_OPTIONS hooks must not reach a child (they fail under a dropped UID), and no ISTIO_* of
// the runner's may change what is tested.
const baseEnv = (): Record<string, string> => ({ PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' })

const spawn = (file: string, args: readonly string[], env: Record<string, string> = {}): Ran => {
  const result = spawnSync(file, args, { env: { ...baseEnv(), ...env }, encoding: 'utf8', cwd: '/', timeout: 60_000 })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const cli = (args: readonly string[], env: Record<string, string> = {}): Ran => spawn(...untappedCall(process.execPath, CLI, ...args), env)

/** The CLI in a network namespace of its own, created for this run and gone with it; `wrap` goes before node. */
// Untapped: tap's hook lives in the checkout, which a dropped UID may not read.
const isolated = (args: readonly string[], env: Record<string, string> = {}, wrap: readonly string[] = [], cli = CLI): Ran =>
  spawn('unshare', ['-n', ...wrap, ...untapped(process.execPath, cli, ...args)], env)

const flagsIn = (help: string): string[] => [...help.matchAll(/^ {2}(?:-\w, )? *--([\w-]+)/gm)].map(m => m[1]!).sort()

t.test('help: printed once, -h as --help, nothing on stderr', async t => {
  const long = cli(['--help'])
  t.equal(long.code, 0)
  t.equal(long.stderr, '')
  t.equal(long.stdout.split('entrypoint [command] [flags]').length - 1, 1, 'the usage line appears once')
  for (const name of Object.keys(COMMANDS)) t.match(long.stdout, new RegExp(`^ {2}entrypoint ${name} `, 'm'), `${name} is listed`)
  t.same(flagsIn(long.stdout), ['help'], 'no command given: the commands, and no flag of any of them')
  t.same(cli(['-h']), long, '-h is --help')
})

t.test("each command's help lists that command's flags and no other", async t => {
  // istio-iptables --help is Istio's own (its flags, as pflag prints them), tested with that command.
  for (const name of (Object.keys(COMMANDS) as (keyof typeof COMMANDS)[]).filter(name => name !== 'istio-iptables')) {
    const help = cli([name, '--help'])
    t.equal(help.code, 0, `${name} --help exits 0`)
    const files = name === 'inject' || name === 'uninject' ? ['filename'] : []
    t.same(flagsIn(help.stdout), [...commandFlags(name).map(s => s.flag), 'help', ...files].sort(), `${name} --help lists its flags`)
    if (name === 'run' || name === 'inject') t.same(cli([name, '-h']).stdout, help.stdout, `${name} -h is the same`)
  }
  t.notMatch(cli(['plan', '--help']).stdout, /--user|--webhook-port|--cni-bin-dir/, "plan's help has no agent, webhook or installer flag")
  t.match(cli(['run', '--help']).stdout, /--user\b/, "run's help has the agent's flags")
  const other = cli(['plan', '--user', 'app'])
  t.equal(other.code, 2, "another command's flag is refused")
  t.equal(
    other.stderr,
    'sidecar-redirect: "--user" is not a flag of plan (it is a flag of run, ready, classifier, inject, uninject, webhook); `plan --help` lists plan\'s flags [E_CONFIG]\n',
  )
})

t.test('a reader that goes away early: the CLI exits quietly', async t => {
  for (const reader of ['head -1', 'true']) {
    // PIPESTATUS: the CLI's own exit status, not the reader's.
    const piped = spawn('bash', ['--norc', '-c', `"$0" "$1" --help | ${reader}; echo "status=\${PIPESTATUS[0]}" >&2`, process.execPath, CLI])
    t.equal(piped.stderr, 'status=0\n', `--help | ${reader}: no EPIPE, exit 0`)
  }
  const head = spawn('bash', ['--norc', '-c', '"$0" "$1" --help | head -1', process.execPath, CLI])
  t.equal(head.stdout, 'entrypoint [command] [flags]\n')
  const plan = spawn('bash', ['--norc', '-c', `"$0" "$1" plan | true; echo "status=\${PIPESTATUS[0]}" >&2`, process.execPath, CLI])
  t.equal(plan.stderr, 'status=0\n', 'plan | true too')
})

t.test("Istio's own ISTIO_* names: one warning each naming ours, in both formats, never an error", async t => {
  const text = cli(['plan'], { ISTIO_SERVICE_CIDR: '198.18.0.0/15', ISTIO_LOCAL_EXCLUDE_PORTS: '22', ISTIO_META_DNS_CAPTURE: 'true' })
  t.equal(text.code, 0)
  t.equal(
    text.stderr,
    [
      "sidecar-redirect warning: ISTIO_LOCAL_EXCLUDE_PORTS is Istio's name, not a setting of ours: it has no effect here; use ISTIO_INBOUND_EXCLUDE_PORTS",
      "sidecar-redirect warning: ISTIO_META_DNS_CAPTURE is Istio's name, not a setting of ours: it has no effect here; use ISTIO_DNS_CAPTURE",
      "sidecar-redirect warning: ISTIO_SERVICE_CIDR is Istio's name, not a setting of ours: it has no effect here; use ISTIO_OUTBOUND_INCLUDE_CIDRS",
      '',
    ].join('\n'),
  )
  t.equal(text.stdout, cli(['plan']).stdout, 'the plan is the default one: they changed nothing')
  const json = cli(['plan'], { ISTIO_SERVICE_EXCLUDE_CIDR: '198.18.0.0/15', ISTIO_LOG_FORMAT: 'json', ISTIO_STRICT_ENV: 'true' })
  t.equal(json.code, 0, 'strict mode is about typos of ours: still a warning')
  t.same(JSON.parse(json.stderr), {
    event: 'warning',
    message: "ISTIO_SERVICE_EXCLUDE_CIDR is Istio's name, not a setting of ours: it has no effect here; use ISTIO_OUTBOUND_EXCLUDE_CIDRS",
    variable: 'ISTIO_SERVICE_EXCLUDE_CIDR',
  })
  for (const [name, { ours, note }] of Object.entries(ISTIO_NAMES)) {
    const one = cli(['plan'], { [name]: '1' })
    t.equal(one.stderr.split('\n').length, 2, `${name}: one line`)
    t.ok(one.stderr.includes(ours ?? note ?? '?'), `${name}: names what to use instead`)
  }
  t.equal(cli(['plan'], { ISTIO_INBOUND_PORTS: '80' }).stderr, '', 'a name that is both theirs and ours is ours: no warning')
})

t.test('refusals by the kernel and the system are one line naming what is missing', async t => {
  if (!kernelAvailable(t)) return
  for (const backend of ['nftables', 'iptables-nft']) {
    for (const command of ['init', 'verify', 'clean']) {
      const denied = isolated([command], { ISTIO_BACKEND: backend, ISTIO_VERIFY: 'rules' }, ['setpriv', '--bounding-set=-net_admin'])
      t.equal(denied.code, 3, `${backend} ${command} without CAP_NET_ADMIN: exit 3`, { stderr: denied.stderr })
      t.match(
        denied.stderr,
        /^sidecar-redirect: .*not permitted \(run as root with CAP_NET_ADMIN\).* \[E_ENVIRONMENT\]\n$/,
        '... naming the capability',
      )
      t.notMatch(denied.stderr, /a bug|\n +at /, '... not as a bug, and no stack')
    }
  }
  const runtime = programs().cli
  const nobody = isolated(['verify'], {}, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'], runtime)
  t.equal(nobody.code, 3, 'verify as a user that is not root: exit 3', { stderr: nobody.stderr })
  // Legacy's unreadable list of tables does not stop it (a non-root init with capabilities works): the tool does.
  t.match(nobody.stderr, /^sidecar-redirect: \S+-save: not permitted \(run as root with CAP_NET_ADMIN\): .*\(you must be root\) \[E_ENVIRONMENT\]\n$/)
})

t.test('verify where nothing of ours is installed says so in one line, exit 5; a partial install is still a diff', async t => {
  if (!kernelAvailable(t)) return
  for (const backend of ['nftables', 'iptables-nft', 'iptables-legacy']) {
    const env = { ISTIO_BACKEND: backend, ISTIO_VERIFY: 'rules' }
    const empty = isolated(['verify'], env)
    t.equal(empty.code, 5, `${backend}: exit 5`)
    t.match(
      empty.stderr,
      /^sidecar-redirect: nothing of sidecar-redirect is installed in this network namespace \(.*\): init has not run here, or clean has \[E_VERIFY\]\n$/,
    )
    // init, clean, verify: again nothing; init, take one jump away, verify: the diff, not "nothing".
    const script = (between: string): Ran =>
      spawn('unshare', ['-n', 'sh', '-c', `"$0" "$1" init >/dev/null && ${between} && exec "$0" "$1" verify`, process.execPath, CLI], env)
    const cleaned = script('"$0" "$1" clean >/dev/null')
    t.equal(cleaned.code, 5)
    t.match(cleaned.stderr, /nothing of sidecar-redirect is installed/, `${backend}: after clean, nothing of ours`)
    const cut =
      backend === 'nftables'
        ? 'nft flush chain inet sidecar_redirect output'
        : `${backend === 'iptables-legacy' ? 'iptables-legacy' : 'iptables-nft'} -t nat -F SIDECAR_OUTBOUND`
    const partial = script(cut)
    t.equal(partial.code, 5)
    t.notMatch(partial.stderr, /nothing of sidecar-redirect/, `${backend}: something of ours is there: a diff`)
    t.ok(partial.stderr.split('\n').length > 3, '... of several lines', { stderr: partial.stderr })
  }
})
