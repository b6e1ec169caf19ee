// The installer's idea of what the runtime loads, checked against libcni itself (the harness's `load`, as
// containerd's go-cni loads a directory): each row of the shared cases, and directories the installer has chained
// into, hostile ones included. Needs the harness (npm run test:cni builds it); no root.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { execa } from 'execa'
import t, { type Test } from 'tap'
import { isConfig, loadConfig } from '../../../src/cni/conflist.js'
import { reconcile } from '../../../src/cni/install.js'
import type { Logger } from '../../../src/log.js'
import { CONF_CASES } from '../../helpers/conf-cases.js'
import { HARNESS } from '../../helpers/cni.js'

const silent = { event: () => undefined, report: () => undefined } as unknown as Logger

interface Loaded {
  readonly file: string
  readonly network?: string
  readonly cniVersion?: string
  readonly types?: string[]
  readonly error?: string
}

const libcniLoad = async (dir: string): Promise<Loaded[]> => {
  const { stdout } = await execa(HARNESS, ['load', dir])
  return stdout
    .split('\n')
    .filter(l => l !== '')
    .map(l => JSON.parse(l) as Loaded)
}

const tempDir = (t: Test): string => {
  const dir = mkdtempSync(`${tmpdir()}/sr-libcni-`)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('every row: libcni loads it exactly when the installer says it does, with the same network name', async t => {
  for (const c of CONF_CASES) {
    const dir = tempDir(t)
    writeFileSync(`${dir}/${c.name}`, c.bytes)
    const [libcni] = await libcniLoad(dir)
    t.equal(
      libcni?.error === undefined,
      c.loads,
      `${c.what}: libcni ${libcni?.error === undefined ? 'loads it' : `says ${libcni.error.slice(0, 120)}`}`,
    )
    if (c.loads) t.equal(libcni?.network, c.network, '  network name')
    t.equal(isConfig(loadConfig(c.name, c.bytes)), c.loads, '  and so does the installer')
  }
})

t.test('after the installer chains into a directory, libcni picks the file it wrote, with ours last', async t => {
  const dirs: [string, Record<string, string | Buffer>][] = [
    ['a nameless single plugin', { '10-a.conf': '{"cniVersion":"1.0.0","type":"bridge"}' }],
    ['Latin-1 bytes', { '10-a.conflist': Buffer.from('{"cniVersion":"1.0.0","name":"caf\xe9","plugins":[{"type":"bridge"}]}', 'latin1') }],
    [
      'a list nested deep',
      { '10-a.conflist': `{"cniVersion":"1.0.0","name":"d","plugins":[{"type":"bridge","x":${'['.repeat(6000)}${']'.repeat(6000)}}]}` },
    ],
    [
      'files the runtime skips before it',
      {
        '00-broken.conflist': '{"name":',
        '01-notype.conf': '{"cniVersion":"1.0.0","name":"x"}',
        '02-caps.conflist': '{"name":"c","plugins":[{"type":"bridge","capabilities":{"a":1}}]}',
        '10-a.conflist': '{"cniVersion":"1.1.0","name":"a","plugins":[{"type":"sidecar-redirect"},{"Type":"bridge"}]}',
      },
    ],
  ]
  for (const [what, files] of dirs) {
    await t.test(what, async t => {
      const dir = tempDir(t)
      mkdirSync(`${dir}/bin`)
      mkdirSync(`${dir}/net.d`)
      for (const [name, bytes] of Object.entries(files)) writeFileSync(`${dir}/net.d/${name}`, bytes)
      const target = { confDir: `${dir}/net.d`, binDir: `${dir}/bin`, plugin: Buffer.from('plugin'), entry: { type: 'sidecar-redirect' } }
      const said = new Set<string>()
      t.equal(await reconcile(target, silent, said), 'chained')
      const loaded = await libcniLoad(`${dir}/net.d`)
      const first = loaded.find(l => l.error === undefined)
      t.match(first, { file: /^10-a\.conflist$/ }, 'libcni uses the file the installer wrote', { loaded })
      t.equal(first?.types?.at(-1), 'sidecar-redirect', '... with ours last')
      t.equal(first?.types?.filter(type => type === 'sidecar-redirect').length, 1, '... once')
      t.equal(await reconcile(target, silent, said), 'unchanged', 'and the next check changes nothing')
    })
  }
})
