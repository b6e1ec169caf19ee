// `entrypoint inject` and `uninject` as a user runs them: YAML and JSON from files, directories and stdin, every
// workload kind and Lists, several documents per file; what is not a workload passes through byte for byte,
// comments and order stay, refusals write nothing and exit 10, warnings go to stderr.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { execa } from 'execa'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import type { Io } from '../../../src/io.js'
import { run } from '../../../src/main.js'
import { transformObject } from '../../../src/inject/workloads.js'
import { untapped } from '../../helpers/processes.js'
import { KINDS, type Obj, podSpec, templateOf } from '../../helpers/workloads.js'

const dir = mkdtempSync(`${tmpdir()}/sr-inject-cli-`)
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const file = (text: string, ext = 'yaml'): string => {
  const path = `${dir}/m${++files}.${ext}`
  writeFileSync(path, text)
  return path
}

const io = (captured: { out: string; err: string }): Io => ({
  exec: async () => {
    throw new Error('inject starts no process')
  },
  fs: { readFile: async () => undefined, readDir: async () => [], canOpenIpv6: async () => false, onPath: async () => true },
  lock: async () => async () => undefined,
  now: () => performance.now(),
  startedAt: 0,
  out: { write: text => void (captured.out += text), error: text => void (captured.err += text) },
})

const cli = async (argv: string[], env: Record<string, string> = {}) => {
  const captured = { out: '', err: '' }
  const code = await run(argv, env, io(captured))
  return { code, ...captured }
}

const MANIFEST = `# Our shop's web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # keep this name
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app          # the app itself
        image: "registry.example/web:2"
        securityContext: {runAsUser: 1000, capabilities: {drop: [ALL]}}
---
# Not a workload: left exactly as written.
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  -   port: 80      # odd spacing
      targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: "1"
`

const docs = (text: string): Obj[] => parseAllDocuments(text).map(d => d.toJS() as Obj)

t.test('a multi-document file: the workload injected with its comments kept, the rest byte for byte', async t => {
  const { code, out, err } = await cli(['inject', '-f', file(MANIFEST)])
  t.equal(code, 0, err)
  t.equal(err, '')
  const [deployment, service, configMap] = out.split(/^---\n/m)
  t.match(deployment, /^# Our shop's web tier\.\n/, 'the leading comment')
  t.match(deployment, /name: web # keep this name/, 'a trailing comment')
  t.match(deployment, /- name: app # the app itself/, "a comment inside the user's container")
  t.equal(`---\n${service}`, MANIFEST.split(/^---\n/m)[1]!.replace(/^/, '---\n'), 'the Service, byte for byte')
  t.equal(configMap, MANIFEST.split(/^---\n/m)[2], 'the ConfigMap, byte for byte')
  const injected = docs(out)
  const expected = transformObject(docs(MANIFEST)[0]!, 'inject', { env: {}, flags: {} }).object
  t.same(injected[0], expected, "the Deployment is the injection module's output")
  t.same(Object.keys(injected[0]!), ['apiVersion', 'kind', 'metadata', 'spec'], 'keys keep their order')

  const twice = await cli(['inject', '-f', file(out)])
  t.equal(twice.out, out, 'injecting the output again writes it back unchanged')
  const back = await cli(['uninject', '-f', file(out)])
  t.same(docs(back.out), docs(MANIFEST), 'uninject gives back what was written')
  t.match(back.out, /name: app # the app itself/, 'comments still there')
})

t.test('every workload kind, and a List of them, in YAML and in JSON', async t => {
  const objects = Object.values(KINDS).map(k => k.make(podSpec()))
  const list = { apiVersion: 'v1', kind: 'List', items: objects }
  for (const [name, text, ext] of [
    ['YAML', objects.map(o => JSON.stringify(o)).join('\n---\n'), 'yaml'],
    ['a JSON List', JSON.stringify(list, null, 2), 'json'],
  ] as const) {
    const { code, out, err } = await cli(['inject', '-f', file(text, ext)])
    t.equal(code, 0, err)
    const results = ext === 'json' ? (JSON.parse(out) as Obj)['items'] : docs(out)
    t.equal(results.length, objects.length, name)
    for (const object of results as Obj[]) {
      t.same(
        templateOf(object)
          ['spec'].initContainers.slice(0, 2)
          .map((c: Obj) => c['name']),
        ['sidecar-redirect-init', 'sidecar-redirect-proxy'],
        `${name}: ${object['kind']} injected`,
      )
      t.doesNotThrow(() => new KINDS[object['kind']]!.model(object as never).validate(), `${object['kind']} valid`)
    }
  }
})

t.test('directories, several -f, and settings from flags and env', async t => {
  const manifests = mkdtempSync(`${dir}/dir-`)
  writeFileSync(`${manifests}/b.yaml`, `---\n${JSON.stringify(KINDS['Job']!.make(podSpec()))}`)
  writeFileSync(`${manifests}/a.yml`, JSON.stringify(KINDS['Pod']!.make(podSpec())))
  writeFileSync(`${manifests}/notes.txt`, 'not a manifest')
  const { code, out, err } = await cli(['inject', '-f', manifests, '-f', file(MANIFEST), '--inject-mode', 'cni', '--kube-version', '1.28'], {
    ISTIO_PROXY_PORT: '15001',
  })
  t.equal(code, 0, err)
  const results = docs(out)
  t.notMatch(out, /---\n---\n/, 'one separator between inputs, however each begins')
  t.same(
    results.map(o => o['kind']),
    ['Pod', 'Job', 'Deployment', 'Service', 'ConfigMap'],
    "a directory's manifests in name order, then the next -f",
  )
  const pod = results[0]!
  t.same(
    pod['spec'].initContainers.map((c: Obj) => c['name']),
    ['migrate', 'sidecar-redirect-validate'],
    'mode cni, and classic on 1.28',
  )
  t.match(pod['spec'].initContainers[1].env, [{ name: 'ISTIO_PROXY_PORT', value: '15001' }])
  t.match(err, /Job shop\/web: spec\.template\.spec\.restartPolicy is Never, and in the classic layout/, 'the warning, naming the object and field')
})

t.test('refusals exit 10, name every object and field, and write nothing', async t => {
  const host = KINDS['DaemonSet']!.make(podSpec())
  host['spec'].template.spec.hostNetwork = true
  const system = KINDS['Deployment']!.make(podSpec())
  system['metadata'].namespace = 'kube-system'
  const { code, out, err } = await cli(['inject', '-f', file(`${JSON.stringify(host)}\n---\n${MANIFEST}\n---\n${JSON.stringify(system)}`)])
  t.equal(code, 10)
  t.equal(out, '', 'nothing written')
  t.match(err, /refused to inject 2 object\(s\), for the 2 field\(s\) below; nothing was written \[E_REFUSED\]/)
  t.match(err, /DaemonSet shop\/web: spec\.template\.spec\.hostNetwork is true/)
  t.match(err, /Deployment kube-system\/web: metadata\.namespace is kube-system/)
  const optedOut = KINDS['DaemonSet']!.make(podSpec())
  optedOut['spec'].template.metadata.annotations['inject.sidecar-redirect.io/inject'] = 'disabled'
  optedOut['spec'].template.spec.hostNetwork = true
  const text = JSON.stringify(optedOut)
  t.same(await cli(['inject', '-f', file(text)]), { code: 0, out: `${text}\n`, err: '' }, 'an opted-out object passes untouched')
})

t.test('bad input and bad settings: one line naming what is wrong, exit 2', async t => {
  for (const [argv, env, says] of [
    [['inject', '-f', `${dir}/missing.yaml`], {}, /-f ".*missing\.yaml": cannot read it: ENOENT/],
    [['inject', '-f', file('a: [unclosed')], {}, /not valid YAML/],
    [['inject', '-f', file('{"kind":', 'json')], {}, /not valid JSON/],
    [
      ['inject', '-f', file(MANIFEST)],
      { ISTIO_INJECT_LAYOUT: 'sideways' },
      /ISTIO_INJECT_LAYOUT="sideways" is not valid: expected one of auto, native, classic/,
    ],
    [
      ['inject', '-f', file(MANIFEST), '--proxy-command', 'envoy -c x'],
      {},
      /--proxy-command="envoy -c x" is not valid: expected a JSON list of strings/,
    ],
    [['init', '-f', 'x'], {}, /-f\/--filename is a flag of inject and uninject only/],
  ] as const) {
    const result = await cli([...argv], env)
    t.equal(result.code, 2, argv.join(' '))
    t.match(result.err, says)
    t.equal(result.out, '')
  }
})

t.test('stdin, as a pipe from kubectl or helm: `-f -` and no -f alike', async t => {
  const cliPath = new URL('../../../dist/cli.mjs', import.meta.url).pathname
  for (const args of [['inject'], ['inject', '-f', '-']]) {
    const [program, ...argv] = untapped(process.execPath, cliPath, ...args)
    const result = await execa(program, argv, {
      input: MANIFEST,
      env: { PATH: process.env['PATH'] },
      extendEnv: false,
      reject: false,
    })
    t.equal(result.exitCode, 0, result.stderr)
    t.same(docs(result.stdout), docs((await cli(['inject', '-f', file(MANIFEST)])).out), `${args.join(' ')}: the same as from a file`)
  }
})
