// The installer against a conf dir others write: planted state files and links, files it cannot judge, configs
// libcni loads that it used to refuse. Temp directories stand in for the host's conf and bin dirs and for the rest
// of the host ("outside"); reconcile and uninstall run in this process, the periodic check forced as often as a
// test likes. Every file that is not the installer's own is compared by hash, mode, owner and inode.
import { createHash } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  ftruncateSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import t, { type Test } from 'tap'
import { type InstallTarget, reconcile, removeLeftovers, STATE_FILE, uninstall } from '../../../src/cni/install.js'
import type { Logger } from '../../../src/log.js'

interface Host {
  readonly conf: string
  readonly bin: string
  /** The rest of the host: files there must never change. */
  readonly outside: string
  readonly target: InstallTarget
  readonly log: string[]
  readonly logger: Logger
}

const PLUGIN = Buffer.from('#!/bin/sh\n# the plugin as shipped\n')
const ENTRY = { type: 'sidecar-redirect', agentSocket: '/run/sidecar-redirect/agent.sock', settings: {} }
const PRIMARY = '{\n  "cniVersion": "1.0.0",\n  "name": "k8s",\n  "plugins": [\n    { "type": "bridge" }\n  ]\n}\n'

const host = (t: Test): Host => {
  const dir = mkdtempSync(`${tmpdir()}/sr-cni-hostile-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const [conf, bin, outside] = [`${dir}/net.d`, `${dir}/bin`, `${dir}/outside`]
  for (const d of [conf, bin, outside]) mkdirSync(d)
  writeFileSync(`${bin}/bridge`, '\x7fELF the bridge plugin')
  chmodSync(`${bin}/bridge`, 0o755)
  writeFileSync(`${outside}/shadow`, 'root:secret:19000::::::\n')
  chmodSync(`${outside}/shadow`, 0o600)
  const log: string[] = []
  const logger = { event: (event: string, message: string) => void log.push(`${event}: ${message}`), report: () => undefined } as unknown as Logger
  return { conf, bin, outside, target: { confDir: conf, binDir: bin, plugin: PLUGIN, entry: ENTRY }, log, logger }
}

/** Hash, mode, owner, inode (and a link's target) of every entry under the dirs, but the installer's own names. */
const identities = (dirs: readonly string[], own: readonly string[] = []) =>
  Object.fromEntries(
    dirs.flatMap(dir =>
      readdirSync(dir)
        .filter(name => !own.includes(name) && name !== STATE_FILE && name !== 'sidecar-redirect' && !name.startsWith('.sidecar-redirect.tmp-'))
        .map(name => {
          const path = join(dir, name)
          const s = lstatSync(path)
          const what = s.isSymbolicLink()
            ? `-> ${readlinkSync(path)}`
            : s.isFile()
              ? createHash('sha256').update(readFileSync(path)).digest('hex')
              : 'special'
          return [path, { what, mode: s.mode, uid: s.uid, gid: s.gid, ino: s.ino }]
        }),
    ),
  )

const checks = async (h: Host, n = 1): Promise<void> => {
  const said = new Set<string>()
  for (let i = 0; i < n; i++) await reconcile(h.target, h.logger, said)
}

const ourLast = (path: string): boolean => {
  const plugins = (JSON.parse(readFileSync(path, 'utf8')) as { plugins: { type: string }[] }).plugins
  return plugins.at(-1)?.type === 'sidecar-redirect'
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

const needsRoot = (t: Test): boolean => {
  if (process.getuid?.() === 0) return true
  if (process.env['CI'] === 'true') t.fail('owners can be set only as root, and CI must check them')
  else t.plan(0, 'setting a file owner needs root')
  return false
}

t.test('planted state files are ignored with a log line, never followed; nothing outside the installer’s own changes', async t => {
  const evil = Buffer.from('#!/bin/sh\necho pwned\n')
  // A state as this installer writes one, holding `evil` as the original, with some fields planted.
  const plant = (h: Host, fields: { file?: string; written?: string; name?: string; sha256?: string; mode?: number }): void =>
    writeFileSync(
      `${h.conf}/${STATE_FILE}`,
      JSON.stringify({
        version: 1,
        file: fields.file ?? '10-k8s.conflist',
        written: fields.written ?? '0'.repeat(64),
        original: {
          name: fields.name ?? '10-k8s.conflist',
          file: { bytes: evil.toString('base64'), sha256: fields.sha256 ?? sha256(evil), mode: fields.mode ?? 0o644, uid: 0, gid: 0 },
        },
      }),
    )
  const rows: [string, (h: Host) => void | Promise<void>][] = [
    [
      'names reaching into the bin dir (the report: bridge deleted, an executable written)',
      h => plant(h, { file: '../bin/bridge', name: '../bin/bridge', written: sha256(readFileSync(`${h.bin}/bridge`)), mode: 0o755 }),
    ],
    [
      'an absolute name',
      h => writeFileSync(`${h.conf}/${STATE_FILE}`, JSON.stringify({ version: 1, file: `${h.outside}/shadow`, written: '0'.repeat(64) })),
    ],
    ['null', h => writeFileSync(`${h.conf}/${STATE_FILE}`, 'null')],
    ['a file name only', h => writeFileSync(`${h.conf}/${STATE_FILE}`, '{"file":"10-x.conflist"}')],
    [
      'the old format',
      h =>
        writeFileSync(
          `${h.conf}/${STATE_FILE}`,
          JSON.stringify({ file: '10-k8s.conflist', original: { name: '10-k8s.conflist', bytes: '' }, written: '' }),
        ),
    ],
    ['bytes that do not match their hash', h => plant(h, { sha256: '0'.repeat(64) })],
    ['a set-user-ID mode', h => plant(h, { mode: 0o4755 })],
    ['a link to a file outside', h => symlinkSync(`${h.outside}/shadow`, `${h.conf}/${STATE_FILE}`)],
    ['a FIFO', async h => void (await execa('mkfifo', [`${h.conf}/${STATE_FILE}`]))],
    ['8 MiB', h => writeFileSync(`${h.conf}/${STATE_FILE}`, Buffer.alloc(8 << 20, 0x20))],
  ]
  for (const [what, plant] of rows) {
    await t.test(what, async t => {
      const h = host(t)
      writeFileSync(`${h.conf}/10-k8s.conflist`, PRIMARY)
      await plant(h)
      const before = identities([h.bin, h.outside])
      await checks(h, 3)
      t.match(h.log.join('\n'), /ignored: .*\.sidecar-redirect\.state is not the state this installer writes \(.+\): ignored/, 'said once')
      t.equal(h.log.filter(l => l.startsWith('ignored:')).length, 1, 'said once, not at every check')
      t.ok(ourLast(`${h.conf}/10-k8s.conflist`), 'and chained as usual')
      await uninstall(h.target, h.logger)
      t.equal(readFileSync(`${h.conf}/10-k8s.conflist`, 'utf8'), PRIMARY, 'uninstall restores the primary')
      t.same(identities([h.bin, h.outside]), before, 'every file outside the installer’s own: same hash, mode, owner, inode')
      t.same(readdirSync(h.conf), ['10-k8s.conflist'], 'nothing of ours left in the conf dir')
    })
  }
})

t.test('a primary that is a link: chained as a file, its target untouched; uninstall puts the very link back', async t => {
  const h = host(t)
  writeFileSync(`${h.outside}/calico.conflist`, PRIMARY)
  chmodSync(`${h.outside}/calico.conflist`, 0o640)
  symlinkSync(`${h.outside}/calico.conflist`, `${h.conf}/10-calico.conflist`)
  const before = identities([h.bin, h.outside])
  await checks(h, 3)
  const chained = lstatSync(`${h.conf}/10-calico.conflist`)
  t.ok(chained.isFile() && ourLast(`${h.conf}/10-calico.conflist`), 'the link is now a file with ours last')
  t.equal(chained.mode & 0o777, 0o640, "with its target's mode")
  t.match(h.log.join('\n'), /it was a link to ".*calico\.conflist", left untouched; uninstall puts the link back/)
  t.same(identities([h.bin, h.outside]), before, 'the target (and everything outside) untouched')
  await uninstall(h.target, h.logger)
  t.equal(readlinkSync(`${h.conf}/10-calico.conflist`), `${h.outside}/calico.conflist`, 'a link again, to the same target')
  t.same(identities([h.bin, h.outside]), before, 'the target still untouched')
})

t.test('links planted at the plugin’s name and at the old temp name are replaced or ignored, never written through', async t => {
  const h = host(t)
  writeFileSync(`${h.conf}/10-k8s.conflist`, PRIMARY)
  symlinkSync(`${h.outside}/shadow`, `${h.bin}/sidecar-redirect`)
  for (const pid of [process.pid, process.pid + 1]) symlinkSync(`${h.outside}/shadow`, `${h.conf}/.sidecar-redirect.tmp-${pid}`)
  const before = identities([h.outside])
  await checks(h, 2)
  const plugin = lstatSync(`${h.bin}/sidecar-redirect`)
  t.ok(plugin.isFile() && readFileSync(`${h.bin}/sidecar-redirect`).equals(PLUGIN), 'the plugin is a file of its own now')
  t.equal(plugin.mode & 0o7777, 0o755)
  await uninstall(h.target, h.logger)
  t.same(identities([h.outside]), before, 'what the links pointed at is untouched')
  t.notOk(readdirSync(h.bin).includes('sidecar-redirect'), 'the plugin removed')
})

t.test('configs the runtime loads that it used to refuse: chained correctly, or left alone with a reason; never a cycle', async t => {
  const rows: [string, Record<string, string | Buffer>, RegExp | undefined][] = [
    ['a single plugin without a name', { '10-a.conf': '{"cniVersion":"1.0.0","type":"bridge"}' }, undefined],
    [
      'a list of one plugin, ours',
      { '10-a.conflist': '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"sidecar-redirect"}]}' },
      /holds no plugin but sidecar-redirect/,
    ],
    ['a version the plugin does not speak', { '10-a.conflist': PRIMARY.replace('1.0.0', '0.4.0') }, /cniVersion "0\.4\.0"/],
    [
      'a .conf whose .conflist name is taken by a file the runtime skips',
      { '10-a.conf': '{"cniVersion":"1.0.0","name":"a","type":"bridge"}', '10-a.conflist': '{"broken":' },
      /would become 10-a\.conflist, but a file of that name is there already/,
    ],
    [
      'a .conf whose list would sort after a file that loads',
      { '10-a.conf': '{"cniVersion":"1.0.0","name":"a","type":"bridge"}', '10-a.confa.json': '{"cniVersion":"1.0.0","name":"b","type":"bridge"}' },
      /turning 10-a\.conf into 10-a\.conflist would make 10-a\.confa\.json the runtime's pick instead/,
    ],
  ]
  for (const [what, files, reason] of rows) {
    await t.test(what, async t => {
      const h = host(t)
      for (const [name, bytes] of Object.entries(files)) writeFileSync(`${h.conf}/${name}`, bytes)
      await checks(h, 1)
      const afterOne = identities([h.conf])
      const chained = h.log.filter(l => l.startsWith('chained:')).length
      if (reason) {
        t.match(h.log.join('\n'), reason, 'left alone, and the log says why')
        t.equal(chained, 0, 'nothing chained')
      } else {
        t.equal(chained, 1, 'chained within one check')
      }
      // The periodic check, forced: 50 more find nothing to do.
      await checks(h, 50)
      t.same(identities([h.conf]), afterOne, '50 more checks write nothing: same bytes, same inodes')
      t.equal(h.log.filter(l => l.startsWith('chained:')).length, chained, 'and chain nothing again')
      await uninstall(h.target, h.logger)
      for (const [name, bytes] of Object.entries(files))
        t.equal(readFileSync(`${h.conf}/${name}`, 'latin1'), Buffer.from(bytes).toString('latin1'), `${name} as it was`)
    })
  }
})

t.test('files it cannot judge, or that only the bounds keep from hurting: a log line, and the installer goes on', async t => {
  const sparse = (path: string, size: number): void => {
    const fd = openSync(path, 'w')
    ftruncateSync(fd, size)
    closeSync(fd)
  }
  const rows: [string, (h: Host) => Promise<void> | void, RegExp, boolean][] = [
    ['600 MB sorted after the primary (never read)', h => sparse(`${h.conf}/99-huge.conflist`, 600e6), /^$/, true],
    [
      '600 MB sorted before it',
      h => sparse(`${h.conf}/00-huge.conflist`, 600e6),
      /00-huge\.conflist .* is 600000000 bytes or more, more than the 1048576 bytes this installer reads/,
      false,
    ],
    [
      'a FIFO sorted before it',
      h => execa('mkfifo', [`${h.conf}/00-fifo.conf`]).then(() => undefined),
      /00-fifo\.conf .* is a FIFO: the runtime skips it too/,
      true,
    ],
    [
      'a link in a loop',
      h => symlinkSync('00-loop.conf', `${h.conf}/00-loop.conf`),
      /00-loop\.conf .* is a link to what is not readable \(ELOOP\)/,
      true,
    ],
    ['a link to a device', h => symlinkSync('/dev/zero', `${h.conf}/00-zero.conf`), /00-zero\.conf .* is a link to what is a device/, true],
    ['a directory with a config name', h => mkdirSync(`${h.conf}/00-dir.conflist`), /^$/, true],
    [
      'a primary nested 6,000 deep',
      h =>
        writeFileSync(
          `${h.conf}/05-deep.conflist`,
          PRIMARY.replace('{ "type": "bridge" }', `{ "type": "bridge", "x": ${'['.repeat(6000)}${']'.repeat(6000)} }`),
        ),
      /^$/,
      true,
    ],
    [
      'nested 20,000 deep before it',
      h => writeFileSync(`${h.conf}/00-deeper.conflist`, `{"name":"x","plugins":${'['.repeat(20000)}${']'.repeat(20000)}}`),
      /00-deeper\.conflist .* is not valid JSON \(exceeded max depth/,
      true,
    ],
  ]
  for (const [what, plant, said, chains] of rows) {
    await t.test(what, async t => {
      const h = host(t)
      writeFileSync(`${h.conf}/10-k8s.conflist`, PRIMARY)
      await plant(h)
      await checks(h, 3)
      const log = h.log.join('\n')
      if (said.source !== '^$') t.match(log, said, 'the log says what it found')
      const primary = readdirSync(h.conf).includes('05-deep.conflist') ? '05-deep.conflist' : '10-k8s.conflist'
      t.equal(
        ourLast(`${h.conf}/${primary}`),
        chains,
        chains ? `chained into ${primary}` : 'nothing chained, while the runtime might load the other file',
      )
      await uninstall(h.target, h.logger)
      t.notOk(ourLast(`${h.conf}/${primary}`), 'uninstalled')
    })
  }
})

t.test('install then uninstall: Latin-1 bytes, a non-root owner and mode, and a .conf are restored exactly', async t => {
  if (!needsRoot(t)) return
  const h = host(t)
  const latin1 = Buffer.from('{"cniVersion":"1.0.0","name":"caf\xe9","plugins":[{"type":"bridge","note":"\xff"}]}\n', 'latin1')
  writeFileSync(`${h.conf}/10-latin1.conflist`, latin1)
  chownSync(`${h.conf}/10-latin1.conflist`, 1234, 5678)
  chmodSync(`${h.conf}/10-latin1.conflist`, 0o640)
  await checks(h, 2)
  const chained = lstatSync(`${h.conf}/10-latin1.conflist`)
  t.same([chained.uid, chained.gid, chained.mode & 0o777], [1234, 5678, 0o640], 'the chained file keeps owner and mode')
  t.ok(
    readFileSync(`${h.conf}/10-latin1.conflist`)
      .subarray(0, latin1.length - 5)
      .equals(latin1.subarray(0, -5)),
    'and the owner’s bytes',
  )
  await uninstall(h.target, h.logger)
  const back = lstatSync(`${h.conf}/10-latin1.conflist`)
  t.ok(readFileSync(`${h.conf}/10-latin1.conflist`).equals(latin1), 'the bytes back, \\xe9 and \\xff included (no U+FFFD)')
  t.same([back.uid, back.gid, back.mode & 0o777], [1234, 5678, 0o640], 'owner and mode back')
  t.match(h.log.join('\n'), /restored: 10-latin1\.conflist restored byte-identical \(mode 0640, owner 1234:5678\)/)

  const g = host(t)
  const conf = '{\n  "cniVersion": "1.1.0",\n  "type": "bridge"\n}\n'
  writeFileSync(`${g.conf}/10-nameless.conf`, conf)
  chownSync(`${g.conf}/10-nameless.conf`, 4321, 4321)
  chmodSync(`${g.conf}/10-nameless.conf`, 0o600)
  await checks(g, 2)
  t.same(readdirSync(g.conf).sort(), ['.sidecar-redirect.state', '10-nameless.conflist'], 'the nameless .conf is a list now')
  await uninstall(g.target, g.logger)
  const s = lstatSync(`${g.conf}/10-nameless.conf`)
  t.same(
    [readFileSync(`${g.conf}/10-nameless.conf`, 'utf8'), s.uid, s.gid, s.mode & 0o777],
    [conf, 4321, 4321, 0o600],
    'the .conf back, with owner and mode',
  )
  t.same(readdirSync(g.conf), ['10-nameless.conf'])
})

t.test('temp files a crash left are removed after 10 minutes: our names only, a link never followed', async t => {
  const h = host(t)
  const old = `${h.conf}/.sidecar-redirect.tmp-${'a'.repeat(32)}`
  const young = `${h.conf}/.sidecar-redirect.tmp-${'b'.repeat(32)}`
  const link = `${h.conf}/.sidecar-redirect.tmp-${'c'.repeat(32)}`
  const similar = `${h.conf}/.sidecar-redirect.tmp-${process.pid}`
  for (const path of [old, young, similar]) writeFileSync(path, 'x')
  symlinkSync(`${h.outside}/shadow`, link)
  const hourAgo = Date.now() / 1000 - 3600
  for (const path of [old, similar]) utimesSync(path, hourAgo, hourAgo)
  lutimesSync(link, hourAgo, hourAgo)
  const before = identities([h.outside])
  await removeLeftovers(h.conf)
  t.same(
    readdirSync(h.conf).sort(),
    [similar, young].map(p => p.slice(h.conf.length + 1)).sort(),
    'the old ones of our pattern are gone; a young one and another name stay',
  )
  t.same(identities([h.outside]), before, 'what the link pointed at is untouched')
})
