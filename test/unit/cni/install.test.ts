// The CNI installer, run as the real entrypoint process against temp directories standing in for the host's
// /etc/cni/net.d and /opt/cni/bin (no root needed): what it writes is read back as bytes, parsed and compared.
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  watch,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import { parseState } from '../../../src/cni/install-state.js'
import { startProcess, type Started } from '../../../src/exec/processes.js'
import { untapped } from '../../helpers/processes.js'

const ROOT = new URL('../../..', import.meta.url).pathname
const CLI = `${ROOT}dist/cli.mjs`
const PLUGIN = readFileSync(`${ROOT}dist/cni/sidecar-redirect`)

interface Host {
  readonly conf: string
  readonly bin: string
}

const host = (t: Test): Host => {
  const dir = mkdtempSync(`${tmpdir()}/sr-cni-install-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const [conf, bin] = [`${dir}/net.d`, `${dir}/bin`]
  for (const d of [conf, bin]) mkdirSync(d)
  return { conf, bin }
}

const ENTRY_SETTINGS = { ISTIO_PROXY_PORT: '15001', ISTIO_INBOUND_EXCLUDE_PORTS: '15021' }

/** Starts the installer on `h`, after `wrap` (a command that runs the rest of its arguments) if one is given. */
const install = (t: Test, h: Host, env: Record<string, string> = {}, wrap: readonly string[] = []): Started => {
  const [file, ...args] = [...wrap, ...untapped(process.execPath, CLI, 'cni-install')] as [string, ...string[]]
  const child = startProcess(file, args, {
    PATH: process.env['PATH'],
    ISTIO_CNI_CONF_DIR: h.conf,
    ISTIO_CNI_BIN_DIR: h.bin,
    ISTIO_CNI_SETTINGS: JSON.stringify(ENTRY_SETTINGS),
    ISTIO_CNI_CHECK_SECONDS: '1',
    ...env,
  })
  t.teardown(() => child.stop())
  return child
}

/** Every file of a directory: bytes, mode, inode and mtime, so "unchanged" means not even rewritten. */
const snapshot = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map(name => {
        const s = statSync(`${dir}/${name}`)
        return [name, { bytes: readFileSync(`${dir}/${name}`).toString('base64'), mode: s.mode & 0o7777, ino: s.ino, mtime: s.mtimeMs }]
      }),
  )

const bytesOf = (dir: string) => Object.fromEntries(Object.entries(snapshot(dir)).map(([name, s]) => [name, s.bytes]))

/** Waits for the n-th log line matching `pattern` (counting from the start of the process). */
const nth = async (child: Started, pattern: RegExp, n = 1, timeoutMs = 30_000): Promise<void> => {
  await child.waitForLine(() => child.lines.filter(l => pattern.test(l)).length >= n, timeoutMs)
}

const stop = async (child: Started): Promise<number> => {
  process.kill(child.pid, 'SIGTERM')
  return child.exited
}

// A primary CNI's list, formatted its own way (tabs, a one-line element), with a trailing newline.
const HEAD =
  '{\n\t"cniVersion": "1.0.0",\n\t"name": "k8s-pod-network",\n\t"plugins": [\n\t\t{\n\t\t\t"type": "bridge",\n\t\t\t"bridge": "cni0",\n\t\t\t"ipam": { "type": "host-local", "ranges": [[{ "subnet": "198.18.0.0/24" }]] }\n\t\t},\n\t\t{"type":"portmap","capabilities":{"portMappings":true},"snat":true}'
const TAIL = '\n\t]\n}\n'
const PRIMARY = HEAD + TAIL

type Plugin = Record<string, unknown>
const pluginsOf = (text: string): Plugin[] => (JSON.parse(text) as { plugins: Plugin[] }).plugins

const expectOurs = (t: Test, plugin: Plugin | undefined): void => {
  t.same(
    plugin,
    {
      type: 'sidecar-redirect',
      agentSocket: '/run/sidecar-redirect/agent.sock',
      settings: ENTRY_SETTINGS,
      captureAll: false,
      allowedAnnotations: [],
      excludeNamespaces: ['kube-system'],
      capabilities: { 'io.kubernetes.cri.pod-annotations': true, dns: true },
    },
    'our entry, with the settings, the annotations and dns capabilities, and defaults (no annotation allowed)',
  )
}

const expectPlugin = (t: Test, h: Host): void => {
  t.ok(readFileSync(`${h.bin}/sidecar-redirect`).equals(PLUGIN), 'the plugin is copied byte for byte')
  t.equal(statSync(`${h.bin}/sidecar-redirect`).mode & 0o7777, 0o755, 'mode 0755')
}

/** A host whose primary list is PRIMARY, and an installer that has chained into it. */
const chainedHost = async (t: Test): Promise<{ h: Host; child: Started }> => {
  const h = host(t)
  writeFileSync(`${h.conf}/10-k8s.conflist`, PRIMARY)
  const child = install(t, h)
  await nth(child, /chained:/)
  return { h, child }
}

t.test('chains in last, every other byte of the file and every other file untouched; SIGTERM restores it byte-identical', async t => {
  const h = host(t)
  writeFileSync(`${h.conf}/10-k8s.conflist`, PRIMARY)
  writeFileSync(`${h.conf}/99-loopback.conflist`, '{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}')
  writeFileSync(`${h.conf}/README`, 'not a config\n')
  const others = (({ '10-k8s.conflist': _, ...rest }) => rest)(snapshot(h.conf))
  const child = install(t, h)
  await nth(child, /chained: sidecar-redirect chained as the last plugin of 10-k8s\.conflist/)
  const text = readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8')
  t.ok(text.startsWith(HEAD) && text.endsWith(TAIL), 'the primary text is kept byte for byte before and after our element')
  const plugins = pluginsOf(text)
  t.same(plugins.slice(0, -1), pluginsOf(PRIMARY), 'the plugins before ours are unchanged')
  expectOurs(t, plugins.at(-1))
  t.match(text.slice(HEAD.length), /^,\n\t\t\{\n\t\t\t"type": "sidecar-redirect"/, 'our element in the file’s own indentation')
  expectPlugin(t, h)
  const now = snapshot(h.conf)
  for (const [name, s] of Object.entries(others)) t.same(now[name], s, `${name}: not touched`)
  t.same(
    Object.keys(now).filter(n => !(n in others)),
    ['.sidecar-redirect.state', '10-k8s.conflist'],
    'nothing else written but the state file',
  )
  t.equal(await stop(child), 0, 'exit 0 on SIGTERM')
  t.equal(readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8'), PRIMARY, 'the original file is back, byte-identical')
  t.same(readdirSync(h.bin), [], 'the plugin is removed')
  t.same(Object.keys(snapshot(h.conf)), ['10-k8s.conflist', '99-loopback.conflist', 'README'], 'the state file is gone, the other files are there')
  t.match(child.lines.join('\n'), /restored: 10-k8s\.conflist restored byte-identical/)
})

t.test('idempotent: a second run (after the first was killed) changes no byte and rewrites no file; its SIGTERM still restores', async t => {
  const { h, child: first } = await chainedHost(t)
  process.kill(first.pid, 'SIGKILL')
  await first.exited
  const [conf, bin] = [snapshot(h.conf), snapshot(h.bin)]
  const second = install(t, h)
  await nth(second, /watching:/)
  // Two periodic checks go by.
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.same(snapshot(h.conf), conf, 'the config dir: same bytes, same inodes, same mtimes')
  t.same(snapshot(h.bin), bin, 'the bin dir too')
  t.notMatch(second.lines.join('\n'), /chained:|installed:/, 'it says it wrote nothing')
  t.equal(await stop(second), 0)
  t.equal(readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8'), PRIMARY, 'the original kept in the state file survives the restart')
})

t.test('the primary CNI rewrites its file: chained again, and the new text is what uninstall restores', async t => {
  const { h, child } = await chainedHost(t)
  // As a CNI's own installer writes: a temp file renamed over the old one, with a plugin more.
  const rewritten = `${HEAD},\n\t\t{"type":"bandwidth"}${TAIL}`
  writeFileSync(`${h.conf}/.tmp-primary`, rewritten)
  renameSync(`${h.conf}/.tmp-primary`, `${h.conf}/10-k8s.conflist`)
  await nth(child, /chained:/, 2)
  const text = readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8')
  t.same(
    pluginsOf(text).map(p => p['type']),
    ['bridge', 'portmap', 'bandwidth', 'sidecar-redirect'],
    'ours last again, after the new one',
  )
  t.ok(text.startsWith(rewritten.slice(0, -TAIL.length)), "the primary's new text kept byte for byte")
  t.equal(await stop(child), 0)
  t.equal(readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8'), rewritten, 'uninstall restores the rewritten file byte-identical')
})

t.test('rewritten since it was chained, our entry kept: uninstall takes out only our entry', async t => {
  const { h, child } = await chainedHost(t)
  const chained = readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8')
  const ours = chained.slice(HEAD.length, chained.length - TAIL.length)
  // The primary changes its own bridge name and keeps the rest, our element included.
  const edited = HEAD.replace('"cni0"', '"cni1"')
  // Whole, in one rename: written in place, a check may read it empty (skipped, as the runtime would), and the
  // installer then reaches the same bytes by another path, with other log lines.
  writeFileSync(`${h.conf}/.tmp-primary`, edited + ours + TAIL)
  renameSync(`${h.conf}/.tmp-primary`, `${h.conf}/10-k8s.conflist`)
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.equal(await stop(child), 0)
  t.equal(readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8'), edited + TAIL, "the owner's edit stays, byte for byte; our element is gone")
  t.match(child.lines.join('\n'), /unchained: 10-k8s\.conflist was rewritten since it was chained/)
})

t.test('a single-plugin .conf becomes a .conflist holding it and ours; uninstall puts the .conf back byte-identical', async t => {
  const h = host(t)
  const conf =
    '{\n  "cniVersion": "1.1.0",\n  "name": "mynet",\n  "type": "bridge",\n  "ipam": { "type": "host-local", "subnet": "198.18.1.0/24" }\n}\n'
  writeFileSync(`${h.conf}/10-mynet.conf`, conf)
  chmodSync(`${h.conf}/10-mynet.conf`, 0o640)
  const child = install(t, h)
  await nth(child, /10-mynet\.conf \(one plugin\) turned into the list 10-mynet\.conflist/)
  t.same(readdirSync(h.conf).sort(), ['.sidecar-redirect.state', '10-mynet.conflist'], 'the .conf is now a .conflist')
  const list = JSON.parse(readFileSync(`${h.conf}/10-mynet.conflist`, 'utf8')) as { cniVersion: string; name: string; plugins: Plugin[] }
  t.same([list.cniVersion, list.name], ['1.1.0', 'mynet'], "the list takes the conf's version and name")
  t.same(list.plugins[0], JSON.parse(conf), 'the original plugin first')
  expectOurs(t, list.plugins[1])
  t.equal(statSync(`${h.conf}/10-mynet.conflist`).mode & 0o7777, 0o640, "the file's mode is kept")
  t.equal(await stop(child), 0)
  t.same(readdirSync(h.conf), ['10-mynet.conf'], 'the .conflist is gone')
  t.equal(readFileSync(`${h.conf}/10-mynet.conf`, 'utf8'), conf, 'the .conf is back byte-identical')
  t.equal(statSync(`${h.conf}/10-mynet.conf`).mode & 0o7777, 0o640, 'with its mode')
})

t.test('several files: the runtime’s pick (lexically first that loads); a malformed one is named and skipped', async t => {
  const h = host(t)
  const files = {
    '00-broken.conflist': '{"cniVersion": "1.0.0", "name": "half", "plugins": [',
    '01-empty.conflist': '{"cniVersion": "1.0.0", "name": "none", "plugins": []}',
    '05-notes.txt': 'ignored\n',
    '10-calico.conflist': PRIMARY,
    '20-flannel.conflist': PRIMARY.replace('k8s-pod-network', 'cbr0'),
    '30-single.conf': '{"cniVersion":"1.0.0","name":"s","type":"bridge"}',
  }
  for (const [name, text] of Object.entries(files)) writeFileSync(`${h.conf}/${name}`, text)
  const before = snapshot(h.conf)
  const child = install(t, h)
  await nth(child, /chained: sidecar-redirect chained as the last plugin of 10-calico\.conflist/)
  const log = child.lines.join('\n')
  t.match(log, /skipped: 00-broken\.conflist in \S+ is not valid JSON \(.*\): the runtime skips it too/, 'the malformed file is named')
  t.match(log, /skipped: 01-empty\.conflist in \S+ is a conflist without a non-empty "plugins" list/, 'so is the empty list')
  // Two periodic checks go by: they find the same, and say nothing again.
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.equal(child.lines.filter(l => l.includes('skipped: 00-broken.conflist')).length, 1, 'said once, not at every check')
  const now = snapshot(h.conf)
  for (const name of Object.keys(files).filter(n => n !== '10-calico.conflist')) t.same(now[name], before[name], `${name}: untouched`)
  t.equal(await stop(child), 0)
  t.same(bytesOf(h.conf), Object.fromEntries(Object.entries(before).map(([n, s]) => [n, s.bytes])), 'every file as it was')
})

t.test('no config yet: it waits and says so, then chains the file when the primary CNI writes it', async t => {
  const h = host(t)
  writeFileSync(`${h.conf}/00-bad.conf`, '{"cniVersion": "1.0.0", "name": "x"}')
  const child = install(t, h)
  await nth(child, /waiting: no CNI config in \S+ yet .*waiting for the primary CNI to write one/)
  t.match(child.lines.join('\n'), /skipped: 00-bad\.conf in \S+ is a single-plugin config without a "type"/)
  t.same(readdirSync(h.conf), ['00-bad.conf'], 'nothing written meanwhile')
  t.ok(readFileSync(`${h.bin}/sidecar-redirect`).equals(PLUGIN), 'the plugin is in place already')
  writeFileSync(`${h.conf}/10-k8s.conflist`, PRIMARY)
  await nth(child, /chained: sidecar-redirect chained as the last plugin of 10-k8s\.conflist/)
  t.equal(await stop(child), 0)
  t.equal(readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8'), PRIMARY)
})

t.test('a primary of a CNI version the plugin does not speak is not chained, and the log says why', async t => {
  const h = host(t)
  const old = PRIMARY.replace('"1.0.0"', '"0.3.1"')
  writeFileSync(`${h.conf}/10-k8s.conflist`, old)
  const child = install(t, h)
  await nth(child, /waiting: 10-k8s\.conflist has cniVersion "0\.3\.1"; the sidecar-redirect plugin speaks 1\.0\.0 and 1\.1\.0/)
  t.equal(readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8'), old, 'untouched')
  t.equal(await stop(child), 0)
})

t.test('a bad entry setting is refused with exit 2 before anything is written', async t => {
  for (const [env, message] of [
    [{ ISTIO_CNI_SETTINGS: '{"ISTIO_PROXY_PORT":"70000"}' }, /ISTIO_CNI_SETTINGS: ISTIO_PROXY_PORT="70000" is not valid: expected a TCP port/],
    [{ ISTIO_CNI_SETTINGS: '{"ISTIO_PROXY_PROT":"1"}' }, /ISTIO_CNI_SETTINGS\.ISTIO_PROXY_PROT="\\"1\\"" is not valid/],
    [{ ISTIO_CNI_SETTINGS: '[1]' }, /ISTIO_CNI_SETTINGS="\[1\]" is not valid: expected a JSON object of ISTIO_\* settings/],
    [{ ISTIO_CNI_EXCLUDE_NAMESPACES: 'kube-system,Bad_NS' }, /ISTIO_CNI_EXCLUDE_NAMESPACES="kube-system,Bad_NS" is not valid/],
  ] as const) {
    const h = host(t)
    writeFileSync(`${h.conf}/10-k8s.conflist`, PRIMARY)
    const child = install(t, h, env)
    t.equal(await child.exited, 2, JSON.stringify(env))
    t.match(child.lines.join('\n'), message)
    t.same([readdirSync(h.conf), readdirSync(h.bin)], [['10-k8s.conflist'], []], 'nothing written')
  }
})

const until = async (done: () => boolean, timeoutMs: number): Promise<boolean> => {
  const end = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  return true
}

t.test('a writer replacing the primary twice in quick succession, 300 times, never loses its last write', async t => {
  const h = host(t)
  const primary = `${h.conf}/10-k8s.conflist`
  const version = (round: number, which: string) => PRIMARY.replace('"cni0"', `"cni-${round}-${which}"`)
  // As a CNI's own installer writes: a temp file renamed over the config.
  const replace = (text: string) => {
    writeFileSync(`${h.conf}/.tmp-primary`, text)
    renameSync(`${h.conf}/.tmp-primary`, primary)
  }
  writeFileSync(primary, version(0, 'b'))
  const child = install(t, h)
  await nth(child, /chained:/)
  const lost: string[] = []
  for (let round = 1; round <= 300; round++) {
    replace(version(round, 'a'))
    replace(version(round, 'b'))
    const settled = await until(() => {
      const text = readFileSync(primary, 'utf8')
      return text.includes(`"cni-${round}-`) && pluginsOf(text).at(-1)?.['type'] === 'sidecar-redirect'
    }, 15_000)
    const text = readFileSync(primary, 'utf8')
    if (!settled || !text.startsWith(version(round, 'b').slice(0, -TAIL.length)))
      lost.push(`round ${round}: ${settled ? 'chained the first write' : 'never chained'}`)
  }
  t.same(lost, [], "every round ends with the writer's last write chained")
  t.equal(await stop(child), 0)
  t.equal(readFileSync(primary, 'utf8'), version(300, 'b'), 'and uninstall restores that last write')
})

t.test('a nameless .conf is chained in one check, and neither the watch nor the periodic check writes again', async t => {
  const h = host(t)
  const conf = '{"cniVersion":"1.0.0","type":"bridge","bridge":"cni0"}\n'
  writeFileSync(`${h.conf}/10-nameless.conf`, conf)
  const child = install(t, h)
  await nth(child, /chained: 10-nameless\.conf \(one plugin\) turned into the list 10-nameless\.conflist/)
  const settled = snapshot(h.conf)
  // Everything that happens in the directory from now: a rewrite cycle (the report: 4,174 log lines in 6 s) shows.
  const events: string[] = []
  const watcher = watch(h.conf, (kind, name) => events.push(`${kind} ${name}`))
  t.teardown(() => watcher.close())
  // Three periodic checks (every second here), each of which would chain again if it found the list refused.
  await new Promise(resolve => setTimeout(resolve, 3500))
  watcher.close()
  t.same(events, [], 'no file in the conf dir was written, renamed or removed')
  t.same(snapshot(h.conf), settled, 'same bytes, inodes and mtimes')
  t.equal(child.lines.filter(l => /chained:|restored:|unchained:/.test(l)).length, 1, 'one write logged in all')
  t.equal(await stop(child), 0)
  t.same(readdirSync(h.conf), ['10-nameless.conf'])
  t.equal(readFileSync(`${h.conf}/10-nameless.conf`, 'utf8'), conf)
})

t.test('what crashed it before is a log line each, and the installer goes on running, then uninstalls', async t => {
  const h = host(t)
  const primary = `${h.conf}/10-k8s.conflist`
  writeFileSync(primary, PRIMARY)
  const child = install(t, h)
  await nth(child, /chained:/)
  let exited = false
  void child.exited.then(() => (exited = true))
  const state = `${h.conf}/.sidecar-redirect.state`
  // Whole, in one rename: a check that read a file half-written would see another case (and a state read so it
  // would write its own state back over).
  const plant = (path: string, text: string): void => {
    writeFileSync(`${h.conf}/.planted`, text)
    renameSync(`${h.conf}/.planted`, path)
  }
  const stateSettled = (): boolean => {
    try {
      return typeof parseState(readFileSync(state)) !== 'string'
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true
      throw error
    }
  }
  const steps: [string, () => void, RegExp][] = [
    ['a state of null', () => plant(state, 'null'), /ignored: .* \(not a JSON object\)/],
    ['a state naming only a file', () => plant(state, '{"file":"10-x.conflist"}'), /ignored: .* \(not version 1\)/],
    [
      'a primary whose only plugin is ours',
      () => plant(primary, '{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"sidecar-redirect"}]}'),
      /waiting: 10-k8s\.conflist holds no plugin but sidecar-redirect/,
    ],
    [
      'a primary nested 6,000 deep',
      () => plant(primary, PRIMARY.replace('"bridge": "cni0"', `"bridge": "cni0", "x": ${'['.repeat(6000)}${']'.repeat(6000)}`)),
      /chained: sidecar-redirect chained as the last plugin of 10-k8s\.conflist/,
    ],
    [
      'a 600 MB list sorted after the primary',
      () => {
        writeFileSync(`${h.conf}/99-huge.conflist`, '')
        truncateSync(`${h.conf}/99-huge.conflist`, 600e6)
        plant(primary, PRIMARY)
      },
      /chained: sidecar-redirect chained as the last plugin of 10-k8s\.conflist/,
    ],
  ]
  for (const [what, step, said] of steps) {
    const before = child.lines.length
    step()
    await child.waitForLine(() => child.lines.slice(before).some(l => said.test(l)), 30_000).catch(() => undefined)
    t.ok(
      child.lines.slice(before).some(l => said.test(l)),
      `${what}: ${said.source}`,
      { lines: child.lines.slice(before) },
    )
    t.notOk(exited, '  and the installer is still running')
    // The check that logged it may write the state again: the next step plants nothing before it has.
    t.ok(await until(stateSettled, 30_000), '  and its check ended with a state of its own, or none')
  }
  t.equal(await stop(child), 0, 'SIGTERM: exit 0')
  t.equal(readFileSync(primary, 'utf8'), PRIMARY, 'uninstalled: the primary as the last step left it')
})

t.test('a host directory it may not write: the log names what is missing (no bare errno), and nothing changes', async t => {
  const h = host(t)
  const primary = `${h.conf}/10-k8s.conflist`
  writeFileSync(primary, PRIMARY)
  const before = snapshot(h.conf)
  // As root a mode bit refuses nothing: the directory is made read-only in a mount namespace of the installer's own.
  const root = process.getuid?.() === 0
  if (!root) chmodSync(h.conf, 0o555)
  t.teardown(() => chmodSync(h.conf, 0o755))
  const child = install(
    t,
    h,
    {},
    root ? ['unshare', '-m', 'sh', '-c', 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', 'sh', h.conf] : [],
  )
  await nth(child, /failed:/)
  const failed = child.lines.find(l => /failed:/.test(l)) ?? ''
  t.match(
    failed,
    root ? /the filesystem is read-only: mount a writable volume there/ : /permission denied to uid \d+, not root/,
    'names what is missing',
  )
  t.notMatch(failed, /E(ROFS|ACCES):/, 'no bare errno')
  t.equal(await stop(child), 0, 'it ran on until SIGTERM: exit 0')
  t.same(snapshot(h.conf), before, 'the directory is unchanged')
})
