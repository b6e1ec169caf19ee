// An excluded interface without a back door, decided by traffic on every backend and in both families. The app
// picks the interface two ways: it binds its socket to it (SO_BINDTODEVICE, no capability needed), or a policy
// rule someone added routes its UID through it. Beyond the interface's own subnet, `far` addresses sit on the
// remote's end of that link, reachable only so. With ISTIO_EXCLUDE_INTERFACES_SCOPE=routes (the default) only the
// destinations the interface's own routes cover go uncaptured: the far ones are captured (the bound socket's
// connection then fails, as REDIRECT cannot hand a packet bound to side0 to loopback; the policy-routed one reaches
// the proxy). With `all` (Istio's way) both reach the far address past the proxy, as docs/capture.md says.
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { addSidePair, initOk, kernelAvailable, REMOTE, REMOTE6, SIDE, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectBypassed, expectCaptured } from '../../helpers/traffic.js'

const FAR = { v4: '198.18.9.2', v6: '2001:db8:9::2' }
const APP_UID = 2000
const FAMILIES = [
  { far: FAR.v4, side: SIDE.remote, remote: REMOTE, ip: '-4' },
  { far: FAR.v6, side: SIDE.remote6, remote: REMOTE6, ip: '-6' },
] as const

/** Someone with NET_ADMIN sends the app's UID out of side0, to anywhere. */
const addPolicyRoute = async (box: Sandbox): Promise<void> => {
  for (const { ip } of FAMILIES) {
    await box.exec('pod', 'ip', [ip, 'route', 'add', 'default', 'dev', 'side0', 'table', '200'])
    await box.exec('pod', 'ip', [ip, 'rule', 'add', 'priority', '100', 'uidrange', `${APP_UID}-${APP_UID}`, 'lookup', '200'])
  }
}

/** The bound socket's connection to a far address: it must not land on the remote's listener. */
const expectBoundNotEscaped = async (t: Test, box: Sandbox, far: string): Promise<void> => {
  const result = await box.connect('pod', far, 9090, { device: 'side0' })
  t.not(result.reply?.label, 'remote', `bound to side0 -> ${far}:9090 does not reach the remote past the proxy`, { result })
}

for (const backend of BACKENDS) {
  t.test(`${backend}: an excluded interface exempts its own routes only; an app that picks it reaches nothing else uncaptured`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    await addSidePair(box)
    await box.exec('remote', 'ip', ['addr', 'add', `${FAR.v4}/32`, 'dev', 'side0r'])
    await box.exec('remote', 'ip', ['addr', 'add', `${FAR.v6}/128`, 'dev', 'side0r', 'nodad'])
    await box.serve('pod', ['proxy=[::]:5001'])
    await box.serve('remote', ['remote=[::]:9090'])
    await addPolicyRoute(box)
    const env = { ISTIO_BACKEND: backend, ISTIO_EXCLUDE_INTERFACES: 'side0' }

    await t.test('scope routes (the default)', async t => {
      await initOk(t, box, env)
      for (const { far, side, remote } of FAMILIES) {
        await expectBypassed(t, box, { from: 'pod', host: side, port: 9090 }, 'remote')
        await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090 })
        await expectBoundNotEscaped(t, box, far)
        await expectCaptured(t, box, { from: 'pod', host: far, port: 9090, as: { uid: APP_UID } })
      }
      await initOk(t, box, env, ['verify'])
      // The routes are read at init: one added later is not exempt, and verify says the plan has moved.
      await box.exec('pod', 'ip', ['route', 'add', '198.18.7.0/24', 'dev', 'side0'])
      const moved = await box.runInit({ ...env, ISTIO_VERIFY: 'rules' }, ['verify'])
      t.equal(moved.exitCode, 5, 'verify exits 5 after a route of side0 was added', { output: moved.output })
      t.match(
        moved.output,
        /- -A SIDECAR_OUTBOUND -d 198\.18\.7\.0\/24 -o side0 -p tcp .*-j RETURN|- .*ip daddr 198\.18\.7\.0\/24 oifname "side0" return/,
      )
      await initOk(t, box, env)
      await initOk(t, box, env, ['verify'])
      await box.exec('pod', 'ip', ['route', 'del', '198.18.7.0/24', 'dev', 'side0'])
    })

    await t.test("scope all (Istio's): whatever leaves by side0 is exempt, the far addresses included", async t => {
      const all = { ...env, ISTIO_EXCLUDE_INTERFACES_SCOPE: 'all' }
      await initOk(t, box, all)
      // IPv4 takes a destination without a route as on-link for a bound socket; IPv6 says ENETUNREACH instead.
      await expectBypassed(t, box, { from: 'pod', host: FAR.v4, port: 9090, as: { device: 'side0' } }, 'remote')
      for (const { far } of FAMILIES) await expectBypassed(t, box, { from: 'pod', host: far, port: 9090, as: { uid: APP_UID } }, 'remote')
      await initOk(t, box, all, ['verify'])
    })
    await initOk(t, box, env, ['clean'])
  })
}
