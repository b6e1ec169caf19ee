// CNI mode's needs in the image: nsenter for the node agent, and the plugin the installer copies to the node. No pod
// and no network: each check is one container run with --network none.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { execa } from 'execa'
import t, { type Test } from 'tap'
import { runForStatus } from '../../../src/exec/processes.js'
import { IMAGE as image, ROOT, unique } from '../../helpers/podman.js'

t.test('the image carries what CNI mode needs: nsenter for the node agent, and the plugin, which runs', async t => {
  const run = (entrypoint: string, ...args: string[]) =>
    runForStatus('podman', ['run', '--rm', '--network', 'none', '-e', 'CNI_COMMAND=VERSION', '--entrypoint', entrypoint, image, ...args])
  const nsenter = await run('/usr/bin/nsenter', '--version')
  t.equal(nsenter.exitCode, 0, nsenter.output)
  t.match(nsenter.output, /^nsenter from util-linux /, 'nsenter runs')
  // No shell in the image for `test -x`: Node asks access(2) the same question.
  const executable = await run(
    '/usr/local/bin/node',
    '-e',
    "require('fs').accessSync('/app/dist/cni/sidecar-redirect', require('fs').constants.X_OK)",
  )
  t.equal(executable.exitCode, 0, `the plugin is executable in /app/dist/cni: ${executable.output}`)
  const version = await run('/app/dist/cni/sidecar-redirect')
  t.equal(version.exitCode, 0, version.output)
  t.same(JSON.parse(version.output), { cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] }, 'and answers VERSION itself')
})

t.test("the image's cni-install with its default paths: chains into a mounted conf dir, and podman stop (SIGTERM) restores it", async t => {
  const dir = mkdtempSync(`${tmpdir()}/sr-image-cni-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const d of ['net.d', 'bin']) mkdirSync(`${dir}/${d}`)
  const primary = '{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"}]}\n'
  writeFileSync(`${dir}/net.d/10-k8s.conflist`, primary)
  const name = unique('sr-cni-install')
  t.teardown(() => runForStatus('podman', ['rm', '-f', '-t', '0', name]))
  const started = await runForStatus('podman', [
    ...['run', '-d', '--name', name, '--network', 'none', '--read-only'],
    ...['-v', `${dir}/net.d:/host/etc/cni/net.d`, '-v', `${dir}/bin:/host/opt/cni/bin`, image, 'cni-install'],
  ])
  t.equal(started.exitCode, 0, started.output)
  const deadline = Date.now() + 15_000
  while (!readFileSync(`${dir}/net.d/10-k8s.conflist`, 'utf8').includes('sidecar-redirect') && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const plugins = (JSON.parse(readFileSync(`${dir}/net.d/10-k8s.conflist`, 'utf8')) as { plugins: { type: string }[] }).plugins
  t.same(
    plugins.map(p => p.type),
    ['bridge', 'sidecar-redirect'],
    'chained last',
  )
  t.equal(statSync(`${dir}/bin/sidecar-redirect`).mode & 0o7777, 0o755, 'the plugin copied, mode 0755')
  const stopped = await runForStatus('podman', ['stop', '-t', '10', name])
  t.equal(stopped.exitCode, 0, stopped.output)
  t.equal((await runForStatus('podman', ['inspect', name, '--format', '{{.State.ExitCode}}'])).output.trim(), '0', 'exit 0 on SIGTERM')
  t.equal(readFileSync(`${dir}/net.d/10-k8s.conflist`, 'utf8'), primary, 'the conflist is back byte-identical')
  t.same(readdirSync(`${dir}/bin`), [], 'the plugin is removed')
})

/**
 * Runs the image's node-agent as the chart's node-agent container does (root, exactly `caps`, the runtime's
 * default seccomp profile, a read-only root, the socket's directory and any `mounts`) and waits for its socket.
 * Returns the socket's directory.
 */
const startImageAgent = async (t: Test, name: string, caps: string, mounts: readonly string[] = []): Promise<string> => {
  const sockets = mkdtempSync(`${tmpdir()}/sr-image-agent-`)
  chmodSync(sockets, 0o755)
  t.teardown(() => rmSync(sockets, { recursive: true, force: true }))
  t.teardown(() => runForStatus('podman', ['rm', '-f', '-t', '0', name]))
  const started = await runForStatus('podman', [
    ...['run', '-d', '--name', name, '--network', 'host', '--read-only', '--cap-drop', 'ALL'],
    ...['--cap-add', caps, '--security-opt', 'no-new-privileges'],
    ...mounts.flatMap(m => ['-v', m]),
    ...['-v', `${sockets}:/run/sidecar-redirect`, image, 'node-agent'],
  ])
  t.equal(started.exitCode, 0, started.output)
  const deadline = Date.now() + 15_000
  while (!readdirSync(sockets).includes('agent.sock') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
  return sockets
}

t.test("the image's node-agent, with the DaemonSet's capabilities and mounts, serves the plugin: ADD programs a netns, DEL cleans it", async t => {
  const ns = unique('sr-cniimg')
  // The chart's capabilities, and the netns directory with HostToContainer (rslave) propagation.
  const sockets = await startImageAgent(t, unique('sr-node-agent'), 'NET_ADMIN,NET_RAW,SYS_ADMIN', ['/run/netns:/var/run/netns:rslave'])
  // Made after the agent started: it sees it only through the mount's propagation, as it sees a new pod's.
  t.equal((await runForStatus('ip', ['netns', 'add', ns])).exitCode, 0)
  t.teardown(() => runForStatus('ip', ['netns', 'delete', ns]))
  const plugin = (command: string) =>
    execa(`${ROOT}dist/cni/sidecar-redirect`, [], {
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: 'c1',
        CNI_NETNS: `/var/run/netns/${ns}`,
        CNI_IFNAME: 'eth0',
        CNI_ARGS: 'K8S_POD_NAMESPACE=shop',
        CNI_PATH: '/nonexistent',
      },
      extendEnv: false,
      input: JSON.stringify({
        cniVersion: '1.0.0',
        name: 'node-net',
        type: 'sidecar-redirect',
        agentSocket: `${sockets}/agent.sock`,
        captureAll: true,
        settings: { ISTIO_PROXY_PORT: '15001' },
      }),
      reject: false,
    })
  const status = await plugin('STATUS')
  t.equal(status.exitCode, 0, `STATUS: the agent in the image finds nsenter and the rule tools: ${status.stdout}`)
  const add = await plugin('ADD')
  t.equal(add.exitCode, 0, `ADD: ${add.stdout} ${add.stderr}`)
  const rules = await runForStatus('ip', ['netns', 'exec', ns, 'iptables-nft-save', '-t', 'nat'])
  t.match(rules.output, /REDIRECT --to-ports 15001/, 'our rules are in the netns')
  const del = await plugin('DEL')
  t.equal(del.exitCode, 0, `DEL: ${del.stdout} ${del.stderr}`)
  t.notMatch((await runForStatus('ip', ['netns', 'exec', ns, 'iptables-nft-save', '-t', 'nat'])).output, /SIDECAR_/, 'and gone after DEL')
})

t.test("the image's node-agent without SYS_ADMIN: STATUS says it cannot enter a netns (code 50), so the node stays not ready", async t => {
  const sockets = await startImageAgent(t, unique('sr-node-agent-nosys'), 'NET_ADMIN,NET_RAW')
  const status = await execa(`${ROOT}dist/cni/sidecar-redirect`, [], {
    env: { CNI_COMMAND: 'STATUS', CNI_PATH: '/nonexistent' },
    extendEnv: false,
    input: JSON.stringify({ cniVersion: '1.1.0', name: 'node-net', type: 'sidecar-redirect', agentSocket: `${sockets}/agent.sock` }),
    reject: false,
  })
  t.not(status.exitCode, 0)
  t.match(
    status.stdout,
    /"code":50,"msg":"the node agent cannot run nsenter \(it cannot enter a network namespace: .*Operation not permitted; the agent needs CAP_SYS_ADMIN\)/,
  )
})
