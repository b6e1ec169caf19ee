// The head start (bin.ts runs it for a plain init while the bundle loads): nothing is read before the namespace's
// lock is held, only nf_tables is read ahead, a setting that does not parse starts nothing, and a failed read
// waits for init to report it. Through the recording fake; the kernel suites run every init through it for real.
import t from 'tap'
import { startHeadStart } from '../../src/backend/head-start.js'
import { fakeExec } from '../helpers/fake-exec.js'

// A kernel with x_tables and IPv6 on eth0, every tool on PATH; `legacy` lists a legacy nat table.
const hostFs = (legacy = false) => ({
  readFile: async (path: string) =>
    path.endsWith('_tables_names') ? (legacy && path.includes('/ip_') ? 'nat\n' : '') : path.endsWith('disable_ipv6') ? '0\n' : undefined,
  readDir: async (path: string) => (path === '/proc/sys/net/ipv6/conf' ? ['all', 'default', 'eth0'] : []),
  canOpenIpv6: async () => true,
  onPath: async () => true,
})

/** A lock that is held only once the test says so. */
const heldLater = () => {
  let grant = (): void => undefined
  let asked = 0
  let released = 0
  const granted = new Promise<void>(resolve => {
    grant = resolve
  })
  const lock = async () => {
    asked++
    await granted
    return async () => void released++
  }
  return { lock, grant: () => grant(), asked: () => asked, released: () => released }
}

t.test('a setting that does not parse starts nothing: no lock, no process (init then refuses it)', async t => {
  const fake = fakeExec(t, [])
  const lock = heldLater()
  t.equal(startHeadStart({ ISTIO_PROXY_PORT: '0' }, fake.exec, hostFs(), lock.lock), undefined)
  t.equal(lock.asked(), 0)
  t.same(fake.calls, [])
})

t.test('nothing is read before the lock is held; then the first read of each family starts', async t => {
  const fake = fakeExec(t, [
    { run: 'iptables-nft-save', stdout: '# v4\n' },
    { run: 'ip6tables-nft-save', stdout: '# v6\n' },
  ])
  const lock = heldLater()
  const early = startHeadStart({}, fake.exec, hostFs(), lock.lock)!
  for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve))
  t.equal(lock.asked(), 1, 'the lock is asked for at once')
  t.same(fake.calls, [], 'and nothing runs while it is not held')
  lock.grant()
  const reads = await early.reads
  t.same(Object.keys(reads).sort(), ['ipv4', 'ipv6'])
  t.equal(await reads.ipv4, '# v4\n')
  t.equal(await reads.ipv6, '# v6\n')
  t.equal((await early.facts).variant.value, 'nft')
  t.equal(early.processes(), 2)
  fake.done()
})

t.test('with legacy tables, detection reads both variants; legacy is never read ahead, nf_tables only for what it lacks', async t => {
  for (const [legacyRules, variant, ahead] of [
    ['-A PREROUTING -j ACCEPT\n', 'legacy', []],
    ['', 'nft', ['ip6tables-nft-save']],
  ] as const) {
    const fake = fakeExec(t, [
      { run: 'iptables-nft-save', stdout: '' },
      { run: 'iptables-legacy-save', stdout: `*nat\n${legacyRules}COMMIT\n` },
      ...ahead.map(run => ({ run, stdout: '' })),
    ])
    const early = startHeadStart({}, fake.exec, hostFs(true), async () => async () => undefined)!
    const reads = await early.reads
    t.equal((await early.facts).variant.value, variant, `${variant}: chosen`)
    t.same(Object.keys(reads), variant === 'nft' ? ['ipv6'] : [], `${variant}: read ahead`)
    await Promise.all(Object.values(reads))
    t.same(fake.calls, ['iptables-nft-save', 'iptables-legacy-save', ...ahead])
    fake.done()
  }
})

t.test('native nftables and ISTIO_IPV6=false: only what init would read is read', async t => {
  const none = fakeExec(t, [])
  t.same(await startHeadStart({ ISTIO_BACKEND: 'nftables' }, none.exec, hostFs(), async () => async () => undefined)!.reads, {})
  const v4 = fakeExec(t, [{ run: 'iptables-nft-save', stdout: '' }])
  const reads = await startHeadStart({ ISTIO_IPV6: 'false' }, v4.exec, hostFs(), async () => async () => undefined)!.reads
  t.same(Object.keys(reads), ['ipv4'])
  await reads.ipv4
  v4.done()
})

t.test('a failed read or lock waits for init to await it (no unhandled rejection in between)', async t => {
  const fake = fakeExec(t, [
    { run: 'iptables-nft-save', fails: { stderr: 'iptables-nft-save: broken\n' } },
    { run: 'ip6tables-nft-save', stdout: '' },
  ])
  const early = startHeadStart({}, fake.exec, hostFs(), async () => async () => undefined)!
  const reads = await early.reads
  for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve))
  await t.rejects(reads.ipv4!, /iptables-nft-save failed: iptables-nft-save: broken/)
  const squatted = startHeadStart({}, fakeExec(t, []).exec, hostFs(), () => Promise.reject(new Error('held by a squatter')))!
  for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve))
  await t.rejects(squatted.lock, /squatter/)
  await t.rejects(squatted.facts, /squatter/, 'and nothing is probed without the lock')
})

t.test('the exec timeout of the settings applies to what it starts', async t => {
  const seen: (number | undefined)[] = []
  const early = startHeadStart(
    { ISTIO_EXEC_TIMEOUT: '7', ISTIO_IPV6: 'false' },
    async (_file, _args, _input, options) => {
      seen.push(options?.timeoutMs)
      return { stdout: '', stderr: '' }
    },
    hostFs(),
    async () => async () => undefined,
  )!
  await (await early.reads).ipv4
  t.same(seen, [7000])
})
