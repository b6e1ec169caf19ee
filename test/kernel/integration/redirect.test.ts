// The traffic suite: for each backend, one sandbox; for each scenario, init with its settings (over the previous
// scenario's rules, which also exercises re-planning in place), then real connections decide.
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { initOk, kernelAvailable, POD, POD6, REMOTE, REMOTE6, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS } from '../../helpers/rows.js'
import { expectBypassed, expectCaptured } from '../../helpers/traffic.js'

const OTHER = '198.18.0.3' // a second remote address, for CIDR rows
const OTHER6 = '2001:db8::3'

interface Scenario {
  readonly env: Record<string, string>
  readonly check: (t: Test, box: Sandbox) => Promise<void>
}

const SCENARIOS: Record<string, Scenario> = {
  'defaults: app traffic is captured both ways; the proxy UID and loopback are not': {
    env: {},
    check: async (t, box) => {
      for (const [pod, remote] of [
        [POD, REMOTE],
        [POD6, REMOTE6],
      ] as const) {
        await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090 })
        await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1000 } })
        await expectBypassed(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1337 } }, 'remote')
        await expectCaptured(t, box, { from: 'remote', host: pod, port: 8080 })
      }
      await expectBypassed(t, box, { from: 'pod', host: '127.0.0.1', port: 8080 }, 'app')
      await expectBypassed(t, box, { from: 'pod', host: '::1', port: 8080 }, 'app')
    },
  },
  'exclusions really bypass: inbound port, outbound port, CIDR per family, proxy GID': {
    env: {
      ISTIO_INBOUND_EXCLUDE_PORTS: '8081',
      ISTIO_OUTBOUND_EXCLUDE_PORTS: '9091',
      ISTIO_OUTBOUND_EXCLUDE_CIDRS: `${OTHER}/32,${OTHER6}/128`,
      ISTIO_PROXY_GID: '2000',
    },
    check: async (t, box) => {
      for (const [pod, remote, other] of [
        [POD, REMOTE, OTHER],
        [POD6, REMOTE6, OTHER6],
      ] as const) {
        await expectBypassed(t, box, { from: 'remote', host: pod, port: 8081 }, 'app-8081')
        await expectCaptured(t, box, { from: 'remote', host: pod, port: 8080 })
        await expectBypassed(t, box, { from: 'pod', host: remote, port: 9091 }, 'remote-9091')
        await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090 })
        await expectBypassed(t, box, { from: 'pod', host: other, port: 9090 }, 'remote')
        await expectBypassed(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1000, gid: 2000 } }, 'remote')
        await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1000, gid: 1000 } })
      }
    },
  },
  'inclusions capture only what is listed: inbound ports, outbound CIDRs': {
    env: { ISTIO_INBOUND_PORTS: '8081,9000-9100', ISTIO_OUTBOUND_INCLUDE_CIDRS: `${OTHER}/32,${OTHER6}/128` },
    check: async (t, box) => {
      for (const [pod, remote, other] of [
        [POD, REMOTE, OTHER],
        [POD6, REMOTE6, OTHER6],
      ] as const) {
        await expectCaptured(t, box, { from: 'remote', host: pod, port: 8081 })
        await expectBypassed(t, box, { from: 'remote', host: pod, port: 8080 }, 'app')
        await expectCaptured(t, box, { from: 'pod', host: other, port: 9090 })
        await expectBypassed(t, box, { from: 'pod', host: remote, port: 9090 }, 'remote')
      }
    },
  },
  'explicit: only listed services are captured, and the proxy dialing a listed one is not': {
    env: { ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: `${OTHER}:9090, [${OTHER6}]:9090, ${REMOTE}/32:9091, [${REMOTE6}]:9091` },
    check: async (t, box) => {
      for (const [remote, other] of [
        [REMOTE, OTHER],
        [REMOTE6, OTHER6],
      ] as const) {
        await expectCaptured(t, box, { from: 'pod', host: other, port: 9090 })
        await expectCaptured(t, box, { from: 'pod', host: remote, port: 9091 })
        await expectBypassed(t, box, { from: 'pod', host: remote, port: 9090 }, 'remote')
        await expectBypassed(t, box, { from: 'pod', host: other, port: 9091 }, 'remote-9091')
        await expectBypassed(t, box, { from: 'pod', host: other, port: 9090, as: { uid: 1337 } }, 'remote')
      }
      await expectCaptured(t, box, { from: 'remote', host: POD, port: 8080 })
    },
  },
  'a different proxy port and UID are honoured': {
    env: { ISTIO_PROXY_PORT: '15001', ISTIO_PROXY_UID: '2337' },
    check: async (t, box) => {
      const result = await box.connect('pod', REMOTE, 9090)
      t.same(result.reply?.label, 'proxy-15001', 'captured to the configured port')
      await expectBypassed(t, box, { from: 'pod', host: REMOTE, port: 9090, as: { uid: 2337 } }, 'remote')
      const old = await box.connect('pod', REMOTE, 9090, { uid: 1337 })
      t.same(old.reply?.label, 'proxy-15001', 'the old proxy UID is captured now')
    },
  },
}

const setUp = async (t: Test): Promise<Sandbox> => {
  const box = await withSandbox(t)
  const link = (await box.exec('remote', 'ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout.split(':')[1]?.trim().split('@')[0] ?? ''
  await box.exec('remote', 'ip', ['addr', 'add', `${OTHER}/32`, 'dev', link])
  await box.exec('remote', 'ip', ['addr', 'add', `${OTHER6}/128`, 'dev', link, 'nodad'])
  await box.exec('pod', 'ip', ['route', 'add', `${OTHER}/32`, 'dev', link.replace(/r$/, 'p')])
  await box.exec('pod', 'ip', ['-6', 'route', 'add', `${OTHER6}/128`, 'dev', link.replace(/r$/, 'p')])
  await box.serve('pod', ['proxy=[::]:5001', 'proxy-15001=[::]:15001', 'app=[::]:8080', 'app-8081=[::]:8081'])
  await box.serve('remote', ['remote=[::]:9090', 'remote-9091=[::]:9091'])
  return box
}

for (const backend of BACKENDS) {
  t.test(backend, async t => {
    if (!kernelAvailable(t)) return
    const box = await setUp(t)
    for (const [name, scenario] of Object.entries(SCENARIOS)) {
      await t.test(name, async t => {
        await initOk(t, box, { ISTIO_BACKEND: backend, ...scenario.env })
        await scenario.check(t, box)
      })
    }
  })
}
