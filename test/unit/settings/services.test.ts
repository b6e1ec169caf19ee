import t from 'tap'
import type { ConfigError } from '../../../src/errors.js'
import { buildPlan } from '../../../src/plan/build.js'
import { ipsetMembers, parseIpsetSave, renderIpsetSwap } from '../../../src/backend/iptables/render-ipset.js'
import { renderNftTable } from '../../../src/backend/nftables/render-nft.js'
import { loadSettings } from '../../../src/settings/load.js'
import { formatService, parseService, parseServiceFile, parseServiceList, refuseOverlaps, type Located } from '../../../src/settings/services.js'
import { parseSettings } from '../../../src/settings/parse.js'

t.test('service entries: IPv4 with or without port, IPv6 bracketed when a port follows', async t => {
  const rows: [string, string | undefined][] = [
    ['198.18.0.10:80', '198.18.0.10/32:80'],
    ['198.18.0.0/16:8000-8080', '198.18.0.0/16:8000-8080'],
    ['198.18.1.7/24', '198.18.1.0/24'],
    ['[2001:db8::1]:443', '[2001:db8::1/128]:443'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['[2001:db8::/32]', '2001:db8::/32'],
    ['[198.18.0.1]:80', undefined],
    ['198.18.0.10:', undefined],
    ['198.18.0.10:0', undefined],
    ['198.18.0.10:1-1025', undefined],
    ['198.18.0.10:80-79', undefined],
    ['host:80', undefined],
  ]
  for (const [entry, expected] of rows) {
    const service = parseService(entry)
    t.equal(service && formatService(service), expected, entry)
  }
})

t.test('a services file: comments and blank lines skipped, a bad line named by its number', async t => {
  t.same(
    parseServiceFile('# header\n198.18.0.10:80\n\n  198.18.1.0/24   # trailing\n', 'F').map(l => [l.where, l.text]),
    [
      ['line 2: ', '198.18.0.10:80'],
      ['line 4: ', '198.18.1.0/24'],
    ],
  )
  const error = t.throws(() => parseServiceFile('198.18.0.10:80\nnot-a-service\n', 'ISTIO_SERVICES_FILE')) as ConfigError
  t.equal(error.value, 'line 2: not-a-service')
})

t.test('overlapping entries of one kind are refused; a port entry inside an any-port subnet is not an overlap', async t => {
  const located = (texts: string[]) => parseServiceFile(texts.join('\n'), 'F')
  t.throws(() => refuseOverlaps(located(['198.18.0.0/16:80', '198.18.3.4:80'])), /line 2: 198.18.3.4:80/)
  t.throws(() => refuseOverlaps(located(['198.18.0.0/16:80-90', '198.18.3.4:85-95'])), /overlaps "line 1/)
  t.throws(() => refuseOverlaps(located(['198.18.0.0/24', '198.18.0.128/25'])), /overlaps "line 1: 198.18.0.0\/24"/)
  t.doesNotThrow(() => refuseOverlaps(located(['198.18.0.0/16:80', '198.18.3.4:81', '198.19.0.0/16:80', '198.18.0.0/16'])))
  t.doesNotThrow(() => refuseOverlaps(located(['2001:db8::/32:80', '198.18.0.0/16'].map(e => (e.startsWith('2001') ? '[2001:db8::/32]:80' : e)))))
})

t.test('services need the explicit method, and the explicit method needs services', async t => {
  const none = () => Promise.reject(new Error('no file'))
  const variableOf = (p: Promise<unknown>) =>
    p.then(
      () => 'accepted',
      (e: ConfigError) => e.variable,
    )
  t.equal(await variableOf(loadSettings({ ISTIO_SERVICES: '198.18.0.10:80' }, {}, none)), 'ISTIO_OUTBOUND_METHOD')
  t.equal(await variableOf(loadSettings({ ISTIO_OUTBOUND_METHOD: 'explicit' }, {}, none)), 'ISTIO_SERVICES')
  const s = await loadSettings({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES_FILE: '/x' }, {}, async (_path, variable) =>
    parseServiceFile('198.18.0.10:80\n', variable),
  )
  t.equal(s.services.length, 1)
})

t.test('sets render as ipset members and nft elements, one rule per set however many services', async t => {
  const settings = parseSettings({
    ISTIO_OUTBOUND_METHOD: 'explicit',
    ISTIO_SERVICES: '198.18.0.10:80-82,198.18.1.0/24,[2001:db8::1]:443',
    ISTIO_IPV6: 'auto',
  })
  const plan = buildPlan(settings, ['ipv4', 'ipv6'])
  const v4 = plan.families[0]!.sets
  t.same(v4.map(ipsetMembers), [['198.18.1.0/24'], ['198.18.0.10,tcp:80', '198.18.0.10,tcp:81', '198.18.0.10,tcp:82']])
  const swap = renderIpsetSwap(v4)
  t.match(
    swap,
    /^create SIDECAR_SVC4-next hash:net family inet hashsize 1024 maxelem 65536 comment -exist\nflush SIDECAR_SVC4-next\nadd SIDECAR_SVC4-next 198\.18\.1\.0\/24\ncreate SIDECAR_SVC4 .* -exist\nswap SIDECAR_SVC4-next SIDECAR_SVC4\ncreate SIDECAR_SVC4_PORTS-next /,
  )
  t.same(
    [...parseIpsetSave('create SIDECAR_SVC4 hash:net family inet comment\nadd SIDECAR_SVC4 198.18.1.0/24\nadd SIDECAR_SVC4 198.18.0.1\n').entries()],
    [['SIDECAR_SVC4', { header: 'hash:net family inet comment', members: ['198.18.1.0/24', '198.18.0.1'] }]],
  )
  const table = renderNftTable(plan)
  t.match(table, /set services4_ports \{\n\t\ttype ipv4_addr \. inet_service\n\t\tflags interval\n\t\telements = \{ 198\.18\.0\.10 \. 80-82 \}\n\t\}/)
  t.match(table, /ip daddr \. tcp dport @services4_ports redirect to :5001/)
  const many = parseSettings({
    ISTIO_OUTBOUND_METHOD: 'explicit',
    ISTIO_SERVICES: Array.from({ length: 500 }, (_, i) => `198.18.${i >> 8}.${i & 255}:80`).join(','),
  })
  const rules = buildPlan(many, ['ipv4']).families[0]!.chains.flatMap(c => c.rules).length
  t.equal(
    rules,
    buildPlan(parseSettings({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '198.18.0.1:80' }), ['ipv4']).families[0]!.chains.flatMap(
      c => c.rules,
    ).length,
    'the rule count does not grow with the services',
  )
})

t.test('the overlap check agrees with comparing every pair, on random lists', async t => {
  const { cidrRange } = await import('../../../src/settings/cidr.js')
  // A small address space and few ports, so random entries nest, repeat and clash often.
  let seed = 7
  const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n)
  const entry = (): string => {
    const prefix = 28 + random(5)
    const address = `198.18.0.${random(64)}/${prefix}`
    if (random(3) === 0) return address
    const from = 1 + random(20)
    return `${address}:${from}-${from + random(4)}`
  }
  const pairwise = (located: Located[]): boolean =>
    located.some((a, i) =>
      located.slice(0, i).some(b => {
        if ((a.service.ports === undefined) !== (b.service.ports === undefined)) return false
        const [a0, a1] = cidrRange(a.service.cidr)
        const [b0, b1] = cidrRange(b.service.cidr)
        const ports =
          !a.service.ports || !b.service.ports || (a.service.ports.from <= b.service.ports.to && b.service.ports.from <= a.service.ports.to)
        return a0 <= b1 && b0 <= a1 && ports
      }),
    )
  let clashes = 0
  for (let round = 0; round < 300; round++) {
    const located = parseServiceList(Array.from({ length: 1 + random(12) }, entry).join(','), 'ISTIO_SERVICES')
    const expected = pairwise(located)
    let refused = false
    try {
      refuseOverlaps(located)
    } catch {
      refused = true
    }
    if (refused !== expected) t.fail(`disagrees on ${located.map(l => l.text).join(', ')}`)
    clashes += expected ? 1 : 0
  }
  t.ok(clashes > 50 && clashes < 250, `both outcomes were exercised (${clashes} of 300 lists clash)`)
})
