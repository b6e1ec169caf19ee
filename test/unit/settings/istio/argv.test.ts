// Istio's command line read as Go's pflag reads it under cobra: every form a flag takes, and each refusal in
// pflag's words.
import t from 'tap'
import { UsageError } from '../../../../src/errors.js'
import { parseArgv } from '../../../../src/settings/istio/argv.js'
import { ALL_ISTIO_FLAGS } from '../../../../src/settings/istio/options.js'

const read = (argv: string[]) => {
  const parsed = parseArgv(argv, ALL_ISTIO_FLAGS)
  return { values: Object.fromEntries(parsed.values), args: parsed.args, help: parsed.help }
}

t.test('every form a value takes', async t => {
  const rows: [string[], Record<string, string[]>, string[]?][] = [
    [['-p', '15001'], { proxyPort: ['15001'] }],
    [['-p15001'], { proxyPort: ['15001'] }],
    [['-p=15001'], { proxyPort: ['15001'] }],
    [['--envoy-port', '15001'], { proxyPort: ['15001'] }],
    [['--envoy-port=15001'], { proxyPort: ['15001'] }],
    // The injector passes empty values: `-x ""`.
    [['-x', ''], { outboundExcludeCidrs: [''] }],
    // A value may start with a dash: it is the flag's.
    [['-i', '-5'], { outboundIncludeCidrs: ['-5'] }],
    [['-b', '*', '-d', '15090,15021,15020'], { inboundPorts: ['*'], inboundExcludePorts: ['15090,15021,15020'] }],
    // A boolean alone is true; it takes a value only after `=`; a word after it is an argument.
    [['-n'], { dryRun: ['true'] }],
    [['--dry-run=false'], { dryRun: ['false'] }],
    [['--dry-run', 'false'], { dryRun: ['true'] }, ['false']],
    [['-n=false'], { dryRun: ['false'] }],
    // Bundled shorthands: booleans, then one that takes the rest of the word or the next one.
    [['-nq', '80'], { dryRun: ['true'], outboundPorts: ['80'] }],
    [['-nq80'], { dryRun: ['true'], outboundPorts: ['80'] }],
    [['--run-validation', '--skip-rule-apply'], { runValidation: ['true'], skipRuleApply: ['true'] }],
    [['--log_output_level=default:info', '--log_as_json'], { logOutputLevel: ['default:info'], logAsJson: ['true'] }],
    [['--log_target', 'stderr', '--log_target=/tmp/x'], { logTarget: ['stderr', '/tmp/x'] }],
    [['-u', '1', '-u', '2'], { proxyUid: ['1', '2'] }],
    [['istio', '-p', '1', 'more'], { proxyPort: ['1'] }, ['istio', 'more']],
    [['--', '-p', '1'], {}, ['-p', '1']],
    [['-'], {}, ['-']],
  ]
  for (const [argv, values, args = []] of rows) t.same(read(argv), { values, args, help: false }, JSON.stringify(argv))
})

t.test('help, long or short, anywhere', async t => {
  for (const argv of [['--help'], ['-h'], ['-p', '1', '-h'], ['-nh']]) t.equal(read(argv).help, true, JSON.stringify(argv))
})

t.test('what pflag refuses, in its words', async t => {
  const rows: [string[], string][] = [
    [['--bogus'], 'unknown flag: --bogus'],
    [['--bogus=1'], 'unknown flag: --bogus'],
    [['-y'], "unknown shorthand flag: 'y' in -y"],
    [['-ny'], "unknown shorthand flag: 'y' in -ny"],
    [['-p'], "flag needs an argument: 'p' in -p"],
    [['--envoy-port'], 'flag needs an argument: --envoy-port'],
    [['---x'], 'bad flag syntax: ---x'],
    [['--=x'], 'bad flag syntax: --=x'],
    // Our own command's flags are not Istio's.
    [['--proxy-port', '1'], 'unknown flag: --proxy-port'],
  ]
  for (const [argv, message] of rows) {
    t.throws(() => read(argv), new UsageError(message), JSON.stringify(argv))
  }
})

t.test('every flag of the table is reachable by its long name, and by its shorthand', async t => {
  for (const [key, flag] of Object.entries(ALL_ISTIO_FLAGS)) {
    const value = flag.kind === 'bool' ? [] : ['x']
    t.same(read([`--${flag.long}`, ...value]).values[key], [flag.kind === 'bool' ? 'true' : 'x'], flag.long)
    if (flag.short) t.same(read([`-${flag.short}`, ...value]).values[key], [flag.kind === 'bool' ? 'true' : 'x'], flag.short)
  }
})
