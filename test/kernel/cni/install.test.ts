// The CNI installer's restore of what only root can set: a chained file's owner (not the installer's own) and
// mode come back with its bytes. Root for chown; the rest of the installer's tests need none (test/unit/cni/).
import { chmodSync, chownSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { uninstall } from '../../../src/cni/install.js'
import { checks, host } from '../../helpers/cni-host.js'

t.test('install then uninstall: Latin-1 bytes, a non-root owner and mode, and a .conf are restored exactly', async t => {
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
