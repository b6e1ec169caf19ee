// The house's layers, checked from the code's own imports: every import in src/ goes down the table below (or
// stays in its room), and no files import each other in a circle. A new room must be given a layer here.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import t from 'tap'

const SRC = new URL('../../../src', import.meta.url).pathname

// Lowest first. A room is a folder of src/ or a file directly in it.
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'order.ts', 'started.ts', 'text.ts'],
  ['settings'],
  ['exec', 'net', 'log.ts'],
  ['cgroup', 'plan', 'privilege', 'inject'],
  // Throwaway network namespaces: the demo's and the kernel tests' harness.
  ['sandbox'],
  ['path'],
  ['backend', 'classifier'],
  // What a command may do to the world: the node agent's engine (cni) builds one per pod.
  ['io.ts'],
  ['verify', 'agent', 'cni', 'webhook'],
  ['commands', 'cli.ts', 'peer.ts'],
  ['main.ts'],
  ['bin.ts'],
]

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap(name => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : []
  })

const importsOf = (file: string): string[] =>
  [...readFileSync(file, 'utf8').matchAll(/(?:from |import\(|import )'(\.{1,2}\/[^']+)'/g)].map(m =>
    resolve(dirname(file), m[1]!).replace(/\.js$/, '.ts'),
  )

const roomOf = (file: string): string => relative(SRC, file).split('/')[0]!
const layerOf = (room: string): number => LAYERS.findIndex(layer => layer.includes(room))

const graph = new Map(files(SRC).map(f => [f, importsOf(f)]))

t.test('every room has a layer', async t => {
  for (const room of new Set([...graph.keys()].map(roomOf))) t.ok(layerOf(room) >= 0, `${room} is in LAYERS`)
})

t.test('every import between rooms goes down a layer', async t => {
  const upward = [...graph].flatMap(([file, imports]) =>
    imports
      .filter(i => roomOf(i) !== roomOf(file) && layerOf(roomOf(i)) >= layerOf(roomOf(file)))
      .map(i => `${relative(SRC, file)} -> ${relative(SRC, i)}`),
  )
  t.same(upward, [], 'no import runs up or sideways')
})

t.test('no files import each other in a circle', async t => {
  // Tarjan's strongly connected components: any with more than one file is a circle.
  let index = 0
  const order = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const circles: string[][] = []
  const visit = (v: string): void => {
    order.set(v, index)
    low.set(v, index++)
    stack.push(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!order.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, order.get(w)!))
    }
    if (low.get(v) === order.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop()!
        component.push(relative(SRC, w))
      } while (w !== v)
      if (component.length > 1) circles.push(component)
    }
  }
  for (const v of graph.keys()) if (!order.has(v)) visit(v)
  t.same(circles, [], 'no circles')
})

// The node agent runs every pod's init, verify and clean in one process: a module-level variable would be state
// shared between pods' requests. Allowed: caches made on first use that never change afterwards (libc's FFI
// bindings; the injector's default settings; the module Istio's probe loads lazily).
const LAZY_CONSTANTS = ['net/libc.ts:', 'inject/containers.ts:', 'verify/istio-probe.ts:']
t.test("no module keeps mutable state at its top level (one pod's request cannot leave any for another)", async t => {
  const found = [...graph.keys()].flatMap(file =>
    readFileSync(file, 'utf8')
      .split('\n')
      .flatMap((line, i) => (/^(export )?(let|var) /.test(line) ? [`${relative(SRC, file)}:${i + 1}: ${line}`] : [])),
  )
  t.same(
    found.filter(l => !LAZY_CONSTANTS.some(allowed => l.startsWith(allowed))),
    [],
    'no top-level let or var but the caches that never change',
  )
})

// The exec layer is the one seam to other processes: init's tools (exec.ts), the long-lived peers and the proxy
// (processes.ts), the peer's IPC child (ipc-child.ts). privilege/replace-process.ts calls libc's execve, which
// starts nothing: it replaces this process with the proxy.
const SPAWNS = /from '(?:node:)?child_process'|from 'execa'|from '(?:node:)?worker_threads'|from '(?:node:)?cluster'/
t.test('no module outside the exec layer starts a process', async t => {
  const found = [...graph.keys()].filter(file => roomOf(file) !== 'exec' && SPAWNS.test(readFileSync(file, 'utf8')))
  t.same(
    found.map(f => relative(SRC, f)),
    [],
    'child_process, execa, worker_threads and cluster are imported in src/exec only',
  )
  t.ok(
    [...graph.keys()].some(file => roomOf(file) === 'exec' && SPAWNS.test(readFileSync(file, 'utf8'))),
    'the check sees the seam itself',
  )
})

// A failure is told apart once, at the seam, by errno, exit status and the tool's classify: callers ask
// failedFor(error, reason) or isNotInstalled(error). Only the classify modules read what a tool printed when it
// failed (nft, ipset, ip and tc exit 1 or 2 for everything, and iptables 4 for two kinds, so their first words
// decide there), and nothing anywhere matches the text of an error's message.
const READS_TEXT = ['backend/iptables/classify.ts', 'backend/nftables/classify.ts', 'backend/iproute/classify.ts']
const MATCHES_ERROR_TEXT = [
  // A pattern tried on a message, stderr, or whatever was caught: /x/.test(error.message), re.exec(e.stderr), ...
  /\.(?:test|exec|match|matchAll|search)\([^)]*\b(?:message|stderr|messageOf|String\((?:error|err|e|cause|reason)\))\b/,
  // A message or stderr searched: error.message.includes(...), failure.stderr.match(...), ...
  /\b(?:message|stderr)\)?\.(?:match|matchAll|includes|startsWith|endsWith|search|indexOf)\(/,
  // What a caught value says, searched: messageOf(error).includes(...), String(error).match(...).
  /\b(?:messageOf|String)\([^)]*\)\.(?:match|matchAll|includes|startsWith|endsWith|search|indexOf)\(/,
]
const matchesErrorText = (line: string): boolean => MATCHES_ERROR_TEXT.some(pattern => pattern.test(line))

t.test("no source file matches an error by its message text; only the tools' classify modules read their words", async t => {
  const found = [...graph.keys()]
    .filter(file => !READS_TEXT.includes(relative(SRC, file)))
    .flatMap(file =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (matchesErrorText(line) ? [`${relative(SRC, file)}:${i + 1}: ${line.trim()}`] : [])),
    )
  t.same(found, [], 'no message or stderr is matched outside the classify modules')
  for (const file of READS_TEXT) t.ok(graph.has(join(SRC, file)), `${file} exists`)
  // The check can fail: each form it must catch, as the code used to write it.
  for (const line of [
    'if (error instanceof EnvironmentError && / is not installed/.test(error.message)) {',
    'if (error instanceof CommandFailed && /not supported/i.test(error.stderr)) return []',
    'const managed = [...stderr.matchAll(/table (\\S+ \\S+) is managed/g)]',
    "if (messageOf(error).includes('File exists')) return",
    "if ((error as Error).message.startsWith('ip is not')) return",
  ])
    t.ok(matchesErrorText(line), `caught: ${line}`)
  t.notOk(matchesErrorText("if (failedFor(error, 'absent')) return []"), 'a reason is asked, not text')
})

// Effects outside io (src/io.ts): the files and rooms that reach the world directly (files, sockets, FFI), and
// why. A new one is added here on purpose, or goes through io.
const DIRECT_IO: Readonly<Record<string, string>> = {
  'exec/': 'the seam to processes, and the PATH lookup beside it',
  'net/': 'the kernel: sockets, namespaces and libc through FFI, which is what the room is for',
  'cni/': "the node side's own wing: host files, its servers, its per-pod Io (pod-io.ts, node-io.ts)",
  'classifier/': "the node classifier's server and client sockets",
  'webhook/': "the injection webhook's server",
  'io.ts': 'the real Io itself',
  'peer.ts': 'the demo and test traffic peer, a program of its own',
  'backend/lock.ts': "the namespace's rule lock (io.lock), an abstract unix socket",
  'cgroup/net-cls.ts': 'the net_cls cgroup the agent joins: mounted and written where it lives',
  'privilege/status.ts': "/proc/<pid>/status, read to prove the agent's drop",
  'settings/services-file.ts': 'ISTIO_SERVICES_FILE, read in bounded time and memory before any plan',
  'verify/probe.ts': "the live probe's own sockets, inside the pod",
  'verify/landing.ts': "the live probe's listeners and connections",
  'verify/istio-probe.ts': "the live probe of Istio's mode",
  'commands/cni-install.ts': "the installer's watch of the host's CNI directory",
  'commands/inject.ts': 'the manifests named on the command line',
  'commands/istio-iptables.ts': "Istio's --network-namespace path and its output file",
  'commands/ready.ts': "the proxy's port, probed by the startup probe",
  'commands/validate.ts': "the pod's own files, read by the unprivileged check",
  'sandbox/': "the demo's and tests' namespace harness",
}
const REACHES = /from '(?:node:)?(?:fs|fs\/promises|net|dgram|child_process|http|https|http2|tls|worker_threads)'|from '(?:koffi|execa)'/
t.test('effects outside io are where the list says, and only there', async t => {
  const direct = [...graph.keys()].map(f => relative(SRC, f)).filter(f => REACHES.test(readFileSync(join(SRC, f), 'utf8')))
  const allowed = (file: string): boolean => Object.keys(DIRECT_IO).some(entry => (entry.endsWith('/') ? file.startsWith(entry) : file === entry))
  t.same(
    direct.filter(f => !allowed(f)),
    [],
    'a module that reaches the world directly is listed with its reason',
  )
  t.same(
    Object.keys(DIRECT_IO).filter(entry => !direct.some(f => (entry.endsWith('/') ? f.startsWith(entry) : f === entry))),
    [],
    'every entry still reaches the world (a stale entry goes)',
  )
})

t.test('the check sees imports at all', async t => {
  t.ok([...graph.values()].flat().length > 100, 'imports were read')
})
