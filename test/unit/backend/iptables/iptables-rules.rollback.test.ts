// Rollback through a recording fake at the exec seam: what is reported when a family is refused, and when the
// rollback of the other family fails too. No root needed.
import t from 'tap'
import { CommandFailed, type Exec } from '../../../../src/exec/exec.js'
import { createIptablesRules } from '../../../../src/backend/iptables/iptables-rules.js'
import { ApplyError } from '../../../../src/errors.js'
import { buildPlan } from '../../../../src/plan/build.js'
import { parseSettings } from '../../../../src/settings/parse.js'
import { EMPTY_STATE, renderState, renderTransaction } from '../../../../src/backend/iptables/render-iptables.js'

const fs = { readFile: async () => undefined, readDir: async () => [], canOpenIpv6: async () => true, onPath: async () => true }

const scripted = (refuse: (file: string, call: number) => boolean): { exec: Exec; calls: string[] } => {
  const calls: string[] = []
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args].join(' '))
    // The reads (our variant's save, and the ruleset and devices the whole-path check reads beside it) find nothing.
    if (file.endsWith('-save') || file === 'nft' || file === 'ip' || file === 'tc') return { stdout: '', stderr: '' }
    if (refuse(file, calls.filter(c => c.startsWith(file)).length)) throw new CommandFailed(file, `${file}: line 3 failed\n`, 3)
    return { stdout: '', stderr: '' }
  }
  return { exec, calls }
}

const plan = buildPlan(parseSettings({}), ['ipv4', 'ipv6'])

t.test('IPv6 refused: IPv4 is rolled back and the refusal is what is reported', async t => {
  const { exec, calls } = scripted(file => file === 'ip6tables-nft-restore')
  const error = await createIptablesRules(exec, fs, 'nft')
    .apply(plan)
    .catch((e: unknown) => e)
  t.type(error, ApplyError)
  t.match((error as Error).message, /^ipv6: the kernel refused the transaction at line 3/)
  t.equal(calls.filter(c => c.startsWith('iptables-nft-restore')).length, 2, 'IPv4 applied, then rolled back')
})

t.test('IPv6 refused and the IPv4 rollback refused too: both are named, with the state of each family', async t => {
  const { exec } = scripted((file, call) => file === 'ip6tables-nft-restore' || (file === 'iptables-nft-restore' && call === 2))
  const error = (await createIptablesRules(exec, fs, 'nft')
    .apply(plan)
    .catch((e: unknown) => e)) as ApplyError
  t.type(error, ApplyError)
  t.equal(error.exitCode, 4)
  t.match(error.message, /^ipv6: the kernel refused the transaction.*; then rolling back failed too: ipv4: the kernel refused/)
  t.match(error.message, /Now ipv4 holds the new rules \(the rollback failed\), ipv6 is unchanged \(refused\)/)
})

t.test('the explicit method: refused rules swap the old service sets back, and a new set goes', async t => {
  const explicit = buildPlan(parseSettings({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.10:80,198.18.1.0/24' }), ['ipv4'])
  const restores: string[] = []
  const exec: Exec = async (file, args, input) => {
    if (file === 'ipset' && args[0] === 'list') {
      return {
        stdout:
          'Name: SIDECAR_SVC4_PORTS\nType: hash:net,port\nRevision: 8\nHeader: family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0x1\n',
        stderr: '',
      }
    }
    if (file === 'ipset') {
      restores.push(input ?? '')
      return { stdout: '', stderr: '' }
    }
    if (file.endsWith('-save') || file === 'nft' || file === 'ip' || file === 'tc') return { stdout: '', stderr: '' }
    throw new CommandFailed(file, 'line 3 failed', 3)
  }
  await t.rejects(createIptablesRules(exec, fs, 'nft').apply(explicit), ApplyError)
  t.equal(restores.length, 2, 'swapped in, then swapped back')
  t.match(restores[0], /add SIDECAR_SVC4_PORTS-next 198\.18\.0\.10,tcp:80\n[\s\S]*swap SIDECAR_SVC4_PORTS-next SIDECAR_SVC4_PORTS\n/)
  t.notMatch(restores[0], /destroy/, 'the old members wait in -next until the rules are in place')
  t.equal(
    restores[1],
    'swap SIDECAR_SVC4-next SIDECAR_SVC4\ndestroy SIDECAR_SVC4-next\ndestroy SIDECAR_SVC4\nswap SIDECAR_SVC4_PORTS-next SIDECAR_SVC4_PORTS\ndestroy SIDECAR_SVC4_PORTS-next\n',
    'the set that was there gets its old members back; the one that was not goes',
  )
})

t.test('a set with our name that is not ours is refused before anything changes', async t => {
  const explicit = buildPlan(parseSettings({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.10' }), ['ipv4'])
  const calls: string[] = []
  const exec: Exec = async (file, args) => {
    calls.push(`${file} ${args.join(' ')}`)
    return {
      stdout:
        file === 'ipset'
          ? 'Name: SIDECAR_SVC4\nType: hash:ip\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\n'
          : '',
      stderr: '',
    }
  }
  await t.rejects(createIptablesRules(exec, fs, 'nft').apply(explicit), {
    exitCode: 3,
    message: /ipset SIDECAR_SVC4 has our name but is not ours \(hash:ip/,
  })
  t.same(calls, ['ipset list -t'], 'only read')
})

t.test('a refused payload of several tables (raw committed, nat refused): that family is read again and raw put back', async t => {
  // iptables commits table by table, so the refused IPv4 restore may have left its raw section in place.
  const dns = buildPlan({ ...parseSettings({ ISTIO_DNS_CAPTURE: 'all' }), nameservers: [] }, ['ipv4']).families[0]!
  const rawOnly = renderTransaction(new Map([['raw', renderState(dns).get('raw')!]]), EMPTY_STATE)
  const committedRaw = rawOnly.replace(/^-I (\S+) \d+ /gm, '-A $1 ')
  const saves = ['', committedRaw]
  const restores: string[] = []
  const exec: Exec = async (file, _args, input) => {
    if (file === 'iptables-nft-save') return { stdout: saves.shift() ?? '', stderr: '' }
    if (file === 'nft' || file === 'ip' || file === 'tc') return { stdout: '', stderr: '' }
    restores.push(input ?? '')
    if (restores.length === 1) throw new CommandFailed(file, `${file}: line 20 failed\n`, 20)
    return { stdout: '', stderr: '' }
  }
  const error = await createIptablesRules(exec, fs, 'nft')
    .apply({ families: [dns] })
    .catch((e: unknown) => e)
  t.type(error, ApplyError)
  t.equal(restores.length, 2, 'the refused payload, then the undo of what it committed')
  t.match(restores[1], /^\*raw\n:SIDECAR_DNS_ZONE_OUT - \[0:0\]\n-D OUTPUT .*\n-X SIDECAR_DNS_ZONE_OUT\nCOMMIT\n$/)
})
