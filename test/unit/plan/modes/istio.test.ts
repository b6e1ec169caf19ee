// Istio's mode of the plan. Golden payloads: what `plan istio-iptables` prints (our rendering of Istio's rules, for
// iptables and for native nftables) for each configuration of the traffic matrix, which applies every one of them
// on every backend and reads it back exactly; regenerate with UPDATE_GOLDEN=1 and review the diff like code.
import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { renderNftTable } from '../../../../src/backend/nftables/render-nft.js'
import { renderPayloads } from '../../../../src/commands/plan.js'
import { buildIstioPlan, istioFamilies } from '../../../../src/plan/modes/istio.js'
import type { FamilyPlan, Plan, Rule } from '../../../../src/plan/types.js'
import { parseArgv } from '../../../../src/settings/istio/argv.js'
import { readIstioValues, resolveIstioConfig } from '../../../../src/settings/istio/config.js'
import { ALL_ISTIO_FLAGS } from '../../../../src/settings/istio/options.js'
import { BASE_ISTIO_ARGS, CASES, GROUP_FILE, RESOLV_DEFAULT, type IstioCase } from '../../../helpers/istio-matrix.js'

const DIR = new URL('../../../golden/istio', import.meta.url).pathname

const configOf = (c: IstioCase) => {
  const env = c.env ?? {}
  const values = readIstioValues(parseArgv([...BASE_ISTIO_ARGS, ...c.args], ALL_ISTIO_FLAGS), env)
  return resolveIstioConfig(values, env, {
    passwd: undefined,
    group: GROUP_FILE,
    resolvConf: c.resolvConf ?? RESOLV_DEFAULT,
    addresses: ['127.0.0.1', '198.18.0.1', '::1', '2001:db8::1'],
  })
}

for (const c of CASES) {
  const config = configOf(c)
  for (const [extension, flavour] of [
    ['rules', 'iptables'],
    ['nft', 'nftables'],
  ] as const) {
    t.test(`golden: ${c.name}.${extension}`, async t => {
      const text = renderPayloads(buildIstioPlan(config, flavour), flavour === 'nftables')
      const path = `${DIR}/${c.name}.${extension}`
      if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(path, text)
      t.equal(text, readFileSync(path, 'utf8'))
    })
  }
}

t.test("families: istio-iptables writes IPv6 only when enabled; its nftables mode's inet table sees both", async t => {
  const v4First = configOf({ ...CASES.find(c => c.name === 'empty')!, args: [] })
  const dual = configOf({ ...CASES.find(c => c.name === 'empty')!, args: ['--dual-stack'] })
  t.same(istioFamilies(v4First, 'iptables'), ['ipv4'])
  t.same(istioFamilies(dual, 'iptables'), ['ipv4', 'ipv6'])
  t.same(istioFamilies(v4First, 'nftables'), ['ipv4', 'ipv6'])
  // With IPv6 not enabled, the nftables flavour's IPv6 rules are exactly those that name no address.
  const v6 = buildIstioPlan(configOf(CASES.find(c => c.name === 'cni-basic')!), 'nftables').families[1]!
  const addressed = v6.chains
    .flatMap(ch => ch.rules)
    .filter(r => r.matches.some(m => (m.kind === 'not' ? m.match : m).kind === 'destination' || (m.kind === 'not' ? m.match : m).kind === 'source'))
  t.same(addressed, [])
  t.ok(
    v6.chains.flatMap(ch => ch.rules).some(r => r.purpose === 'istio-outbound-capture'),
    'the wildcard capture is one of them',
  )
})

t.test('the order Istio relies on, in every configuration and family', async t => {
  for (const c of CASES) {
    for (const family of buildIstioPlan(configOf(c), 'iptables').families) {
      const output = family.chains.find(ch => ch.name === 'ISTIO_OUTPUT')!.rules
      const first = (purpose: Rule['purpose']): number => output.findIndex(r => r.purpose === purpose)
      const last = (purpose: Rule['purpose']): number => output.map(r => r.purpose).lastIndexOf(purpose)
      const where = `${c.name} ${family.family}`
      // The proxy's connections to its pod are redirected before its own RETURN lets everything else of it go.
      if (first('istio-proxy-to-self') >= 0)
        t.ok(first('istio-proxy-to-self') < first('istio-proxy-uid'), `${where}: proxy to self before the UID's RETURN`)
      // Every capture comes after every identity's RETURN.
      const captures = output.flatMap((r, i) => (r.purpose === 'istio-outbound-capture' || r.purpose === 'istio-outbound-port-capture' ? [i] : []))
      for (const i of captures) t.ok(i > last('istio-proxy-uid') && i > last('istio-proxy-gid'), `${where}: capture after the proxy's RETURNs`)
      // Exclusions by port come first of all but the excluded interfaces.
      const ports = output.flatMap((r, i) => (r.purpose === 'istio-outbound-exclude-port' ? [i] : []))
      for (const i of ports) t.ok(i < first('istio-proxy-uid'), `${where}: port exclusions first`)
    }
  }
})

t.test('native nftables, in order: a rule both families have is written once, one family alone names its family', async t => {
  const r = (purpose: Rule['purpose'], matches: Rule['matches'] = []): Rule => ({ purpose, protocol: 'tcp', matches, target: { kind: 'return' } })
  const chain = (family: 'ipv4' | 'ipv6', rules: Rule[]): FamilyPlan => ({
    family,
    routing: undefined,
    sets: [],
    chains: [{ name: 'ISTIO_OUTPUT', table: 'nat', hook: 'OUTPUT', rules }],
  })
  const plan: Plan = {
    families: [
      chain('ipv4', [
        r('istio-exclude-interface', [{ kind: 'out-interface', name: 'x' }]),
        r('istio-passthrough-source', [{ kind: 'source', cidr: { family: 'ipv4', address: '127.0.0.6', prefix: 32 } }]),
        r('istio-dns-capture'),
        r('istio-proxy-uid', [{ kind: 'uid-owner', uid: 1 }]),
      ]),
      chain('ipv6', [r('istio-exclude-interface', [{ kind: 'out-interface', name: 'x' }]), r('istio-proxy-uid', [{ kind: 'uid-owner', uid: 1 }])]),
    ],
  }
  const lines = renderNftTable(plan)
    .split('\n')
    .filter(l => l.startsWith('\t\t') && !l.includes('hook'))
    .map(l => l.trim())
  t.same(lines, [
    'meta l4proto tcp oifname "x" return comment "sidecar-redirect/istio-exclude-interface"',
    'meta l4proto tcp ip saddr 127.0.0.6 return comment "sidecar-redirect/istio-passthrough-source"',
    'meta nfproto ipv4 meta l4proto tcp return comment "sidecar-redirect/istio-dns-capture"',
    'meta l4proto tcp meta skuid 1 return comment "sidecar-redirect/istio-proxy-uid"',
  ])
})
