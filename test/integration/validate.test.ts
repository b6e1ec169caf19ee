// validate as CNI mode runs it: an app UID with no capability at all proves capture from inside the pod, and
// fails (exit 9) where capture is missing, with what it saw. Real rules, a real unprivileged process.
import t from 'tap'
import { initOk, kernelAvailable, programs, withSandbox } from '../helpers/kernel.js'

// uid 1000 with every capability set empty and no_new_privs, as a restricted Pod Security container runs.
const unprivileged = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs']

for (const backend of ['iptables-nft', 'nftables'] as const) {
  t.test(`${backend}: validate passes with capture in place and fails (exit 9) without it`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const validate = (env: Record<string, string> = {}, as = unprivileged) =>
      box.tryExec('pod', as[0] ?? 'setpriv', [...as.slice(1), process.execPath, programs().cli, 'validate'], { ISTIO_BACKEND: backend, ...env })
    await initOk(t, box, { ISTIO_BACKEND: backend })
    const ok = await validate()
    t.equal(ok.exitCode, 0, 'exit 0', { output: ok.output })
    t.match(
      ok.output,
      /ipv4 capture: passed, uid 1000 \(this process, an app identity\) -> 198\.18\.0\.1:\d+ reached the proxy port \(SO_ORIGINAL_DST 198\.18\.0\.1:\d+\)/,
    )
    t.match(ok.output, /ipv6 capture: passed/)
    await initOk(t, box, { ISTIO_BACKEND: backend }, ['clean'])
    const missing = await validate()
    t.equal(missing.exitCode, 9, 'exit 9 without our rules', { output: missing.output })
    t.match(missing.output, /the pod's traffic is not captured[\s\S]*ipv4 capture: failed, uid 1000 .* reached its destination/)
    const asProxy = await validate({}, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'])
    t.equal(asProxy.exitCode, 2, 'the proxy UID is refused: its traffic is exempt', { output: asProxy.output })
  })
}

t.test('validate checks DNS capture too, unprivileged, when ISTIO_DNS_CAPTURE is on', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const env = { ISTIO_DNS_CAPTURE: 'all' }
  const validate = () => box.tryExec('pod', 'setpriv', [...unprivileged.slice(1), process.execPath, programs().cli, 'validate'], env)
  await initOk(t, box, env)
  const ok = await validate()
  t.equal(ok.exitCode, 0, 'exit 0', { output: ok.output })
  t.match(ok.output, /ipv4 dns: passed, uid 1000 \(this process, an app identity\) -> 198\.18\.0\.1:53 \(UDP\) reached the DNS port 15053/)
  t.match(ok.output, /ipv6 dns-tcp: passed, uid 1000 .* \(TCP\) reached the DNS port 15053 \(SO_ORIGINAL_DST \[2001:db8::1\]:53\)/)
  await initOk(t, box, {}, ['init'])
  const off = await validate()
  t.equal(off.exitCode, 9, 'exit 9 once DNS is no longer captured', { output: off.output })
  t.match(off.output, /ipv4 dns: failed, uid 1000 .* the query never reached the DNS port 15053/)
})
