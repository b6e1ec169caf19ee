// The installer and a real runtime library together: cni-install chains our entry into a primary conflist of
// Debian's loopback, bridge and host-local, copies the plugin into the CNI bin dir, and libcni runs the list it
// wrote: ADD captures the pod (real connections), CHECK passes, DEL cleans; then SIGTERM restores the list
// byte-identical. Needs root, Debian's CNI plugins and the harness (npm run test:cni).
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { startProcess } from '../../../src/exec/processes.js'
import { startRig } from '../../helpers/cni.js'
import { kernelAvailable, POD, programs, REMOTE, withSandbox } from '../../helpers/kernel.js'
import { expectBypassed, expectCaptured } from '../../helpers/traffic.js'

t.test('libcni runs the list cni-install wrote: ADD captures, CHECK passes, DEL cleans; SIGTERM restores the list', async t => {
  if (!kernelAvailable(t)) return
  const rig = await startRig(t)
  const box = await withSandbox(t)
  // The rig's bin dir holds Debian's plugins and a copy of ours: take ours out, the installer puts it back.
  rmSync(`${rig.dir}/bin/sidecar-redirect`)
  const conf = `${rig.dir}/net.d`
  mkdirSync(conf)
  const ipam = { type: 'host-local', dataDir: `${rig.dir}/ipam`, ranges: [[{ subnet: '198.19.8.0/24' }]] }
  const bridge = { type: 'bridge', bridge: `sri${process.pid % 10000}`, isGateway: true, ipMasq: false, ipam }
  const primary = `${JSON.stringify({ cniVersion: '1.0.0', name: 'node-net', plugins: [{ type: 'loopback' }, bridge] }, null, 2)}\n`
  writeFileSync(`${conf}/10-node.conflist`, primary)
  const installer = startProcess(process.execPath, [programs().cli, 'cni-install'], {
    PATH: process.env['PATH'],
    ISTIO_CNI_CONF_DIR: conf,
    ISTIO_CNI_BIN_DIR: `${rig.dir}/bin`,
    ISTIO_NODE_AGENT_SOCKET: rig.socket,
    ISTIO_CNI_SETTINGS: JSON.stringify({ ISTIO_PROXY_PORT: '15001' }),
    ISTIO_CNI_CAPTURE_ALL: 'true',
  })
  t.teardown(() => installer.stop())
  await installer.waitForLine(line => line.includes('chained:'), 15000)
  const list = `${conf}/10-node.conflist`
  const add = await rig.runtime(box, 'add', list)
  t.equal(add.exitCode, 0, 'ADD through the installed list', { output: add.output })
  await box.serve('pod', ['proxy=[::]:15001', 'app=[::]:8080'])
  await box.serve('remote', ['remote=[::]:9090'])
  await expectCaptured(t, box, { from: 'pod', host: REMOTE, port: 9090, as: { uid: 1000 } })
  await expectCaptured(t, box, { from: 'remote', host: POD, port: 8080 })
  await expectBypassed(t, box, { from: 'pod', host: REMOTE, port: 9090, as: { uid: 1337 } }, 'remote')
  const check = await rig.runtime(box, 'check', list)
  t.equal(check.exitCode, 0, 'CHECK passes', { output: check.output })
  const del = await rig.runtime(box, 'del', list)
  t.equal(del.exitCode, 0, 'DEL succeeds', { output: del.output })
  // (clean leaves the empty built-in nat chains init had to make: test/pods/cni/plugin.test.ts checks byte-identity.)
  const save = (await box.exec('pod', 'iptables-nft-save', [])).stdout + (await box.exec('pod', 'ip6tables-nft-save', [])).stdout
  t.notMatch(save, /SIDECAR_|sidecar-redirect\//, 'after DEL nothing of ours is left')
  process.kill(installer.pid, 'SIGTERM')
  t.equal(await installer.exited, 0)
  t.equal(readFileSync(list, 'utf8'), primary, 'the list is back byte-identical')
  t.same(readdirSync(conf), ['10-node.conflist'], 'and nothing else is left in the config dir')
  t.notOk(readdirSync(`${rig.dir}/bin`).includes('sidecar-redirect'), 'the plugin is removed from the bin dir')
})
