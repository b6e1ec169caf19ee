// A service list swapped on native nftables while connections are made as fast as they can be: none may reach the
// service itself. The swaps are the very transactions apply sends (renderNftApply, from our table as the kernel
// lists it), fed to one `nft -i`, which commits each line as a transaction of its own: far more swaps per second
// than one init per swap, which is what the window of a swap needs to be met at all. Both families.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t from 'tap'
import { renderNftApply } from '../../../src/backend/nftables/render-nft.js'
import { initOk, kernelAvailable, programs, REMOTE, REMOTE6, withSandbox } from '../../helpers/kernel.js'

// Per client; two clients per family, at the lowest priority, so the swaps outpace the connections. Sized so that
// replacing the table whole (the mutation) leaked in every run measured.
const CONNECTIONS = 2500
// A bound for a hang, not a measure (a connection that hangs times out in the peer).
const HANG_MS = 280_000

/**
 * One transaction on one line, as `nft -i` reads it: each line ends in `;`, as nft's syntax allows, but a line of
 * an element list nft wrapped (it ends in a comma) goes on.
 */
const oneLine = (transaction: string): string =>
  transaction
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean)
    .map(l => (l.endsWith(',') ? `${l} ` : `${l}; `))
    .join('')

t.test('nftables: a service list swapped hundreds of times lets no connection reach the service, in both families', async t => {
  if (!kernelAvailable(t)) return
  const dir = mkdtempSync(`${tmpdir()}/sr-swap-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const box = await withSandbox(t)
  const env = (services: string) => ({ ISTIO_BACKEND: 'nftables', ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: services })
  const listA = `${REMOTE}:9090,198.18.200.0/24,[${REMOTE6}]:9090`
  const listB = `${REMOTE}:9090,198.18.201.0/24:443,[${REMOTE6}]:9090,[2001:db8:5::]:443`
  const listed = async (): Promise<string> => (await box.exec('pod', 'nft', ['list', 'table', 'inet', 'sidecar_redirect'])).stdout
  await initOk(t, box, env(listB))
  const tableB = await listed()
  // The second init is itself a swap, made by apply and verified exactly.
  await initOk(t, box, env(listA))
  const tableA = await listed()
  t.not(tableA, tableB)
  writeFileSync(`${dir}/swaps`, `${oneLine(renderNftApply(tableB, tableA))}\n${oneLine(renderNftApply(tableA, tableB))}\n`)

  const proxy = await box.serve('pod', ['proxy=[::]:5001'])
  await box.serve('remote', ['remote=[::]:9090'])
  const { peer } = programs()
  const targets = [REMOTE, REMOTE6, REMOTE, REMOTE6]
  const clients = targets.map(host => box.start('pod', 'nice', ['-n', '19', process.execPath, peer, 'loop', host, '9090', String(CONNECTIONS)]))
  const script = `while [ ! -e ${dir}/stop ]; do cat ${dir}/swaps; done | awk '{ print; fflush() } END { print NR > "${dir}/count" }' | nft -i`
  const swapper = box.start('pod', 'sh', ['-c', script])
  const landed = await Promise.all(clients.map(c => c.waitForLine(l => l.includes('"landed"'), HANG_MS)))
  writeFileSync(`${dir}/stop`, '')
  t.equal(await swapper.exited, 0)
  t.same(
    swapper.lines.filter(l => l.includes('Error')),
    [],
    'nft took every swap',
  )
  const swaps = Number((await box.exec('pod', 'cat', [`${dir}/count`])).stdout.trim())
  t.comment(`${swaps} swaps during ${targets.length * CONNECTIONS} connections: ${landed.join(' ')}`)
  t.ok(swaps >= 100, `the list was swapped while the connections were made (${swaps} times)`)
  for (const [i, line] of landed.entries()) {
    t.same(JSON.parse(line), { landed: { proxy: CONNECTIONS } }, `all ${CONNECTIONS} connections to ${targets[i]} were captured`)
  }
  // What the proxy says each connection was for: SO_ORIGINAL_DST names the service.
  const seen: Record<string, number> = {}
  for (const line of proxy.lines.filter(l => l.includes('"originalDst"'))) {
    const { address, port } = (JSON.parse(line) as { originalDst: { address: string; port: number } }).originalDst
    seen[`${address} ${port}`] = (seen[`${address} ${port}`] ?? 0) + 1
  }
  t.same(
    seen,
    { [`${REMOTE} 9090`]: 2 * CONNECTIONS, [`${REMOTE6} 9090`]: 2 * CONNECTIONS },
    "the proxy saw the service as each one's original destination",
  )
  await initOk(t, box, env(listB))
  await initOk(t, box, env(listB), ['verify'])
})
