// Inputs at their edges and what is left behind, on every backend and in both families: every address written as
// a CIDR (0.0.0.0/0, ::/0) where a CIDR is taken, decided by traffic; and init then clean (or a refused init) in a
// pristine namespace leaving it byte-identical, the tables and chains init had to make included.
import t from 'tap'
import { initOk, kernelAvailable, REMOTE, REMOTE6, snapshot, withSandbox } from '../../helpers/kernel.js'
import { refusingIpv6Path, refusingNftPath } from '../../helpers/paths.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectBypassed, expectCaptured } from '../../helpers/traffic.js'

const REMOTES = [REMOTE, REMOTE6] as const

for (const backend of BACKENDS) {
  t.test(`${backend}: 0.0.0.0/0 and ::/0 as include, exclude and service CIDRs apply, verify, and decide traffic`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await box.serve('pod', ['proxy=[::]:5001'])
    await box.serve('remote', ['remote=[::]:9090', 'remote-9091=[::]:9091'])
    const env = { ISTIO_BACKEND: backend }
    const verify = async (settings: Record<string, string>): Promise<void> => {
      await initOk(t, box, { ...env, ...settings })
      await initOk(t, box, { ...env, ...settings }, ['verify'])
    }
    await verify({ ISTIO_OUTBOUND_INCLUDE_CIDRS: '0.0.0.0/0,::/0' })
    for (const host of REMOTES) await expectCaptured(t, box, { from: 'pod', host, port: 9090 })
    await verify({ ISTIO_OUTBOUND_EXCLUDE_CIDRS: '0.0.0.0/0,::/0' })
    for (const host of REMOTES) await expectBypassed(t, box, { from: 'pod', host, port: 9090 }, 'remote')
    await verify({ ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: '0.0.0.0/0:9090,[::/0]:9090' })
    for (const host of REMOTES) {
      await expectCaptured(t, box, { from: 'pod', host, port: 9090 })
      await expectBypassed(t, box, { from: 'pod', host, port: 9091 }, 'remote-9091')
    }
    await initOk(t, box, env, ['clean'])
  })
}

// Every table our rules use: raw (DNS zones), mangle (TPROXY), nat, in both families.
const EVERY_TABLE = { ISTIO_DNS_CAPTURE: 'all', ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_CAPTURE_PORT: '15006' }

/**
 * A legacy table, once a namespace has one, stays until the namespace goes (the kernel has no way to remove it):
 * what init and clean may leave there is exactly that, each table empty with its built-in chains at ACCEPT.
 */
const emptyLegacyTables = (text: string): { rest: string; tables: string[] } => {
  const tables: string[] = []
  const rest = text.replace(/^\*(\w+)\n((?::[A-Z]+ ACCEPT \[0:0\]\n)+)COMMIT\n/gm, (_, table: string) => {
    tables.push(table)
    return ''
  })
  return { rest, tables }
}

for (const backend of BACKENDS) {
  t.test(`${backend}: init then clean, or a refused init, in a pristine namespace leaves it byte-identical`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const pristine = await snapshot(box)
    const env = { ISTIO_BACKEND: backend, ...EVERY_TABLE }
    const refused = await box.runInit({ ...env, ISTIO_VERIFY: 'rules', PATH: backend === 'nftables' ? refusingNftPath() : refusingIpv6Path() })
    t.equal(refused.exitCode, 4, 'a refused init exits 4', { output: refused.output })
    const afterRefusal = await snapshot(box)
    await initOk(t, box, env)
    t.not(await snapshot(box), pristine, 'init wrote')
    await initOk(t, box, env, ['clean'])
    const afterClean = await snapshot(box)
    if (backend !== 'iptables-legacy') {
      t.equal(afterRefusal, pristine, 'the refused init left nothing, not even a table it made')
      t.equal(afterClean, pristine, 'clean left nothing: no table or chain init made')
      return
    }
    for (const [when, text] of [
      ['after the refused init', afterRefusal],
      ['after clean', afterClean],
    ] as const) {
      const { rest, tables } = emptyLegacyTables(text)
      t.equal(rest, pristine, `${when}: nothing but empty legacy tables`)
      t.ok(
        tables.every(name => ['raw', 'mangle', 'nat'].includes(name)),
        `${when}: and only the ones our rules use (${tables.join(', ')})`,
      )
    }
  })
}
