// Inputs at their edges, decided by traffic on every backend and in both families: every address written as a
// CIDR (0.0.0.0/0, ::/0) where a CIDR is taken.
import t from 'tap'
import { initOk, kernelAvailable, REMOTE, REMOTE6, withSandbox } from '../helpers/kernel.js'
import { BACKENDS } from '../helpers/rows.js'
import { expectBypassed, expectCaptured } from '../helpers/traffic.js'

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
