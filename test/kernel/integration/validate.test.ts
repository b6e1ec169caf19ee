// validate as CNI mode runs it: an app UID with no capability at all proves capture from inside the pod, and
// fails (exit 9) where capture is missing, with what it saw. Real rules, a real unprivileged process.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { OPTIONS } from '../../../src/settings/options.js'
import { initOk, kernelAvailable, POD, programs, REMOTE, REMOTE6, withSandbox } from '../../helpers/kernel.js'
import { withNetCls } from '../../helpers/netcls.js'

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

// The same gate against what a tenant's annotation would do to capture, and in every method it supports. The pod
// also gets default routes, so validate's destinations out of it include the default route's.
const annotationsFile = (t: Test, annotations: Record<string, string>): string => {
  const dir = mkdtempSync(`${tmpdir()}/sr-podinfo-`)
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // As the kubelet writes it: sorted key="value" lines, the value quoted as Go quotes it (JSON's quoting agrees here).
  const text = Object.keys(annotations)
    .sort()
    .map(key => `${key}=${JSON.stringify(annotations[key])}\n`)
    .join('')
  writeFileSync(`${dir}/annotations`, text, { mode: 0o644 })
  return `${dir}/annotations`
}

const podLink = async (box: Sandbox): Promise<string> => /^\d+: (sr\w+)@/m.exec((await box.exec('pod', 'ip', ['-o', 'link'])).stdout)?.[1] ?? ''

const withDefaultRoutes = async (t: Test): Promise<Sandbox> => {
  const box = await withSandbox(t)
  await box.exec('pod', 'ip', ['route', 'add', 'default', 'via', REMOTE])
  await box.exec('pod', 'ip', ['-6', 'route', 'add', 'default', 'via', REMOTE6])
  return box
}

const validateIn = (box: Sandbox, env: Record<string, string>) =>
  box.tryExec('pod', 'setpriv', [...unprivileged.slice(1), process.execPath, programs().cli, 'validate'], env)

const METHODS: [string, Record<string, string>][] = [
  ['uid', {}],
  ['mark', { ISTIO_OUTBOUND_METHOD: 'mark' }],
  ['cgroup', { ISTIO_OUTBOUND_METHOD: 'cgroup' }],
  ['explicit', { ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_SERVICES: `${REMOTE}/32:9090,[${REMOTE6}/128]:9090` }],
]

for (const [method, env] of METHODS) {
  t.test(`method ${method}: validate passes for a captured pod, its connections out of the pod landing on the proxy port`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withDefaultRoutes(t)
    if (method === 'cgroup') await withNetCls(t, box, 0x100001)
    await initOk(t, box, env)
    const ok = await validateIn(box, env)
    t.equal(ok.exitCode, 0, 'exit 0', { output: ok.output })
    const link = await podLink(box)
    if (method === 'explicit') {
      t.match(
        ok.output,
        new RegExp(
          `ipv4 out ${link}: passed, uid 1000 .* -> ${REMOTE}:9090 \\(routed out of ${link}\\) reached the proxy port \\(SO_ORIGINAL_DST ${REMOTE}:9090\\)`,
        ),
      )
      t.match(ok.output, new RegExp(`ipv6 out ${link}: passed, .* -> \\[${REMOTE6}\\]:9090`))
    } else {
      for (const to of ['203.0.113.1:80', '203.0.113.1:443', `${REMOTE}:80`, '[100::1]:80', `[${REMOTE6}]:443`])
        t.match(
          ok.output,
          new RegExp(`out ${link}: passed, uid 1000 .* -> ${to.replace(/[[\].]/g, '\\$&')} \\(routed out of ${link}\\) reached the proxy port`),
          to,
        )
    }
    t.match(ok.output, /ipv4 inbound: not checked, not proven from inside the pod/, 'inbound is said to be unproven, not passed')
  })
}

// What each annotation does to capture had the node applied it; `probes` says whether validate's connections alone
// catch it (inbound cannot be proven from inside the pod, so there the annotation decision is the gate).
const WEAKENINGS = (link: string): { flag: string; value: string; probes: boolean; allowed: number }[] => [
  { flag: 'exclude-interfaces', value: link, probes: true, allowed: 0 },
  { flag: 'outbound-include-cidrs', value: `${POD}/32`, probes: true, allowed: 0 },
  // validate refuses to run as the proxy's identity, whose traffic is exempt: never a pass.
  { flag: 'proxy-uid', value: '1000', probes: true, allowed: 2 },
  { flag: 'outbound-exclude-ports', value: '80,443', probes: true, allowed: 0 },
  { flag: 'inbound-ports', value: '', probes: false, allowed: 0 },
]

const envName = (flag: string): string => Object.values(OPTIONS).find(spec => spec.flag === flag)?.env ?? ''

t.test('validate fails (exit 9) for each weakening the operator did not allow, and passes where the allow-list names it', async t => {
  if (!kernelAvailable(t)) return
  const box = await withDefaultRoutes(t)
  for (const w of WEAKENINGS(await podLink(box))) {
    await t.test(`${w.flag}: ${JSON.stringify(w.value)}`, async t => {
      // The rules as a node would have applied them had it allowed the annotation.
      await initOk(t, box, { [envName(w.flag)]: w.value })
      const file = annotationsFile(t, { [`sidecar-redirect.io/${w.flag}`]: w.value, 'kubernetes.io/config.seen': 'x' })
      const refused = await validateIn(box, { ISTIO_POD_ANNOTATIONS_FILE: file })
      t.equal(refused.exitCode, 9, 'not allowed: exit 9', { output: refused.output })
      t.match(refused.output, new RegExp(`annotation sidecar-redirect.io/${w.flag} is refused: the operator's allowedAnnotations does not name`))
      const probed = await validateIn(box, {})
      if (w.probes) {
        t.equal(probed.exitCode, 9, 'without the annotations file, its connections alone catch it', { output: probed.output })
        t.match(probed.output, /: failed, uid 1000/)
      } else {
        t.equal(probed.exitCode, 0, 'without the annotations file an inbound weakening is not seen: inbound is not provable from inside the pod')
        t.match(probed.output, /inbound: not checked/)
      }
      const allowed = await validateIn(box, { ISTIO_POD_ANNOTATIONS_FILE: file, ISTIO_CNI_ALLOWED_ANNOTATIONS: w.flag })
      t.equal(allowed.exitCode, w.allowed, `allowed by the operator: exit ${w.allowed}`, { output: allowed.output })
    })
  }
})
