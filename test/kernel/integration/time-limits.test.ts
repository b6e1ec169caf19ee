// Nothing init waits on may make it wait forever or without saying why: a hung tool, a held rule lock, a busy
// xtables lock. Each ends in exit 3 naming the culprit, with the kernel as it was.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t, { type Test } from 'tap'
import type { Sandbox } from '../../../src/commands/sandbox.js'
import { kernelAvailable, snapshot, withSandbox } from '../../helpers/kernel.js'
import { ended } from '../../helpers/processes.js'
import { BACKENDS } from '../../helpers/rows.js'

const tempDir = (t: Test, prefix: string): string => {
  const dir = mkdtempSync(`${tmpdir()}/${prefix}`)
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// A stub that ignores SIGTERM (the disposition survives the exec), so only the SIGKILL that follows ends it.
const hungTool = (t: Test, name: string): string => {
  const dir = tempDir(t, 'sr-hung-')
  writeFileSync(`${dir}/${name}`, "#!/bin/sh\ntrap '' TERM\nexec sleep 600\n", { mode: 0o755 })
  return dir
}

const LISTEN = (name: string): string =>
  `require('net').createServer(s => s.destroy()).listen(${JSON.stringify(name)}, () => console.log('holding')); setInterval(() => {}, 1e6)`
const RULE_LOCK = '\0sidecar-redirect/rules'

const holdLock = async (t: Test, box: Sandbox, setpriv: string[]): Promise<number> => {
  const holder = box.start('pod', setpriv.length > 0 ? 'setpriv' : process.execPath, [
    ...setpriv,
    ...(setpriv.length > 0 ? [process.execPath] : []),
    '-e',
    LISTEN(RULE_LOCK),
  ])
  t.teardown(() => holder.stop())
  await holder.waitForLine(l => l === 'holding')
  return holder.pid
}

t.test('a hung ip6tables-restore is killed after ISTIO_EXEC_TIMEOUT: exit 3 naming it, IPv4 rolled back', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  // Foreign rules in each family's nat hooks: iptables-nft leaves the tables it creates behind, so without one
  // "as before" could not be byte-identical. With one, it must be.
  for (const tool of ['iptables-nft', 'ip6tables-nft']) {
    for (const hook of ['PREROUTING', 'OUTPUT']) await box.exec('pod', tool, ['-t', 'nat', '-A', hook, '-p', 'tcp', '--dport', '25', '-j', 'RETURN'])
  }
  const before = await snapshot(box)
  const stubs = hungTool(t, 'ip6tables-nft-restore')
  const started = Date.now()
  const result = await box.runInit({
    ISTIO_BACKEND: 'iptables-nft',
    ISTIO_VERIFY: 'rules',
    ISTIO_EXEC_TIMEOUT: '1',
    PATH: `${stubs}:${process.env['PATH']}`,
  })
  t.equal(result.exitCode, 3, 'exit 3', { output: result.output })
  t.match(
    result.output,
    /ip6tables-nft-restore --noflush -w 5 \(given a \d+-byte transaction on stdin\) was still running after 1 s \(ISTIO_EXEC_TIMEOUT\) and was killed with its process group \[E_ENVIRONMENT\]/,
  )
  t.ok(Date.now() - started < 60_000, 'init ended (a hang would hit the test timeout instead)')
  t.equal(await snapshot(box), before, 'the IPv4 transaction that went through was rolled back')
})

// A tool that forks and waits (a wrapper script running `sleep 3600` as its child, not exec'ing it): SIGTERM ends
// the shell, the sleep keeps the pipes. The seam kills the whole process group and closes the pipes, so init ends
// within the timeout plus a short grace, whichever backend's writer hangs.
const WRITER: Record<(typeof BACKENDS)[number], string> = {
  'iptables-nft': 'iptables-nft-restore',
  'iptables-legacy': 'iptables-legacy-restore',
  nftables: 'nft',
}
const TIMEOUT_S = 2
// SIGTERM, SIGKILL a second later, the rollback and Node's own start and exit, on a loaded 2-core machine: short
// beside the hour the sleep would hold init.
const GRACE_S = 30

for (const backend of BACKENDS) {
  t.test(`${backend}: a writer that forks and hangs ends init within the timeout plus a short grace, the kernel unchanged`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    // Legacy tables cannot be removed once made (see inputs.test.ts): let them exist before, so "unchanged" is exact.
    if (backend === 'iptables-legacy') for (const tool of ['iptables-legacy', 'ip6tables-legacy']) await box.exec('pod', tool, ['-t', 'nat', '-S'])
    const before = await snapshot(box)
    const dir = tempDir(t, 'sr-forking-')
    const real = backend === 'nftables' ? '/usr/sbin/nft' : ''
    // nft also reads the ruleset: only its writes (-f) hang. A restore hangs on every call.
    const hang = `sleep 3600 & echo $! > ${dir}/sleep.pid; wait`
    const body = backend === 'nftables' ? `case "$1" in -f) ${hang} ;; *) exec ${real} "$@" ;; esac` : `cat >/dev/null\n${hang}`
    writeFileSync(`${dir}/${WRITER[backend]}`, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
    const started = Date.now()
    const result = await box.runInit({
      ISTIO_BACKEND: backend,
      ISTIO_VERIFY: 'rules',
      ISTIO_EXEC_TIMEOUT: String(TIMEOUT_S),
      PATH: `${dir}:${process.env['PATH']}`,
    })
    const took = (Date.now() - started) / 1000
    t.equal(result.exitCode, 3, 'exit 3', { output: result.output })
    t.match(
      result.output,
      new RegExp(`${WRITER[backend]} .* was still running after ${TIMEOUT_S} s \\(ISTIO_EXEC_TIMEOUT\\) and was killed with its process group`),
    )
    t.ok(took < TIMEOUT_S + GRACE_S, `init ended after ${took.toFixed(1)} s (the sleep would hold it an hour)`)
    const sleep = Number(readFileSync(`${dir}/sleep.pid`, 'utf8'))
    t.ok(await ended(sleep), `the wrapper's sleep (${sleep}) was killed with its group`)
    t.equal(await snapshot(box), before, 'the kernel is as it was')
  })
}

t.test('the rule lock: an unprivileged squatter is refused at once, naming it', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const before = await snapshot(box)
  const squatter = await holdLock(t, box, ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'])
  const refused = await box.runInit({ ISTIO_VERIFY: 'rules' })
  t.equal(refused.exitCode, 3, { output: refused.output })
  t.match(
    refused.output,
    `rule lock (@sidecar-redirect/rules) is held by PID ${squatter}, UID 65534, which lacks CAP_NET_ADMIN, so it is no sidecar-redirect; refusing rather than waiting on it`,
  )
  t.equal(await snapshot(box), before, 'nothing was changed')
})

t.test('the rule lock held by a privileged process: init waits, then exits 3 naming it', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const holder = await holdLock(t, box, [])
  const waited = await box.runInit({ ISTIO_VERIFY: 'rules' })
  t.equal(waited.exitCode, 3, { output: waited.output })
  t.match(waited.output, `rule lock (@sidecar-redirect/rules) has been held by PID ${holder}, UID 0 for over 10000 ms`)
})

t.test('a busy xtables lock is exit 3 (the environment), not exit 4 (a refusal)', async t => {
  if (!kernelAvailable(t)) return
  const box = await withSandbox(t)
  const before = await snapshot(box)
  // A private lock file, so the machine's own iptables users are not blocked while the test holds it.
  const lockFile = `${tempDir(t, 'sr-xtables-')}/xtables.lock`
  // The holder is one process (sleep, exec'd with the locked fd), so stopping it frees the lock.
  const flock = box.start('pod', 'sh', ['-c', `exec 9>${lockFile}; flock 9; echo locked; exec sleep 600`])
  t.teardown(() => flock.stop())
  await flock.waitForLine(l => l === 'locked')
  const result = await box.runInit({ ISTIO_BACKEND: 'iptables-legacy', ISTIO_VERIFY: 'rules', XTABLES_LOCKFILE: lockFile })
  t.equal(result.exitCode, 3, { output: result.output })
  t.match(
    result.output,
    /ipv[46]: another program held the xtables lock for longer than iptables waited \(-w 5\); nothing was changed \[E_ENVIRONMENT\]/,
  )
  t.equal(await snapshot(box), before, 'nothing was changed')
})
