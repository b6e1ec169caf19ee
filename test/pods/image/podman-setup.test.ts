// Setting up podman for the tests leaves the machine's own containers.conf as it was: the settings go to a private
// file that podman reads through CONTAINERS_CONF, and podman really runs with them.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { runForStatus } from '../../../src/exec/processes.js'
import { CONTAINERS_CONF, podman, ROOT } from '../../helpers/podman.js'

const MACHINE_CONF = '/etc/containers/containers.conf'
const fingerprint = (): string => (existsSync(MACHINE_CONF) ? createHash('sha256').update(readFileSync(MACHINE_CONF)).digest('hex') : 'absent')

t.test("podman-setup writes its settings to .tools/, not the machine's containers.conf", async t => {
  const before = fingerprint()
  const setup = await runForStatus('bash', ['-c', 'cd "$0" && source scripts/image/podman-setup.sh && printf %s "$CONTAINERS_CONF"', ROOT])
  t.equal(setup.exitCode, 0, 'setup runs', { output: setup.output })
  t.equal(setup.output.trim(), CONTAINERS_CONF, 'and exports the private file as CONTAINERS_CONF')
  t.equal(fingerprint(), before, `${MACHINE_CONF} is byte for byte as it was`)
  t.match(readFileSync(CONTAINERS_CONF, 'utf8'), /^runtime = "runc"$/m)
  t.equal(process.env['CONTAINERS_CONF'], CONTAINERS_CONF, "the tests' podman reads the same file")
  t.equal(await podman('info', '--format', '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}'), 'runc cgroupfs', 'podman runs with its settings')
})
