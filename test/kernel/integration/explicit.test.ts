// The explicit method's service lists: from a file, refused by line, and swapped without a moment of missing
// capture, on every backend.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import t from 'tap'
import { initOk, kernelAvailable, programs, REMOTE, snapshot, withSandbox } from '../../helpers/kernel.js'
import { BACKENDS } from '../../helpers/rows.js'

const file = (content: string): string => {
  const path = `${mkdtempSync(`${tmpdir()}/sr-services-`)}/services.txt`
  writeFileSync(path, content)
  return path
}

for (const backend of BACKENDS) {
  t.test(`${backend}: a services file is read, a bad line refused by number, and an update leaves no gap`, async t => {
    if (!kernelAvailable(t)) return
    const box = await withSandbox(t)
    const env = { ISTIO_BACKEND: backend, ISTIO_OUTBOUND_METHOD: 'explicit', ISTIO_VERIFY: 'rules' }
    const listA = file(`# the services this pod calls\n${REMOTE}:9090\n\n198.18.200.0/24  # a whole subnet\n[2001:db8::2]:9090\n`)
    const listB = file(`${REMOTE}:9090\n198.18.201.0/24:443\n`)
    await initOk(t, box, { ...env, ISTIO_SERVICES_FILE: listA })
    const before = await snapshot(box)
    const badFile = file(`${REMOTE}:9090\n# fine\n198.18.0.300:80\n`)
    const bad = await box.runInit({ ...env, ISTIO_SERVICES_FILE: badFile })
    t.equal(bad.exitCode, 2)
    t.match(bad.output, `ISTIO_SERVICES_FILE="${badFile} line 3: 198.18.0.300:80" is not valid`)
    const overlapFile = file(`198.18.0.0/16:9090\n${REMOTE}:9000-9100\n`)
    const overlap = await box.runInit({ ...env, ISTIO_SERVICES_FILE: overlapFile })
    t.equal(overlap.exitCode, 2)
    t.match(
      overlap.output,
      `"${overlapFile} line 2: 198.18.0.2:9000-9100" is not valid: expected entries that do not overlap; it overlaps "${overlapFile} line 1: 198.18.0.0/16:9090"`,
    )
    t.equal(await snapshot(box), before, 'refused lists leave the ruleset byte-identical')

    await box.serve('pod', ['proxy=[::]:5001'])
    await box.serve('remote', ['remote=[::]:9090'])
    // Connections to a service in both lists run while the list is replaced again and again: none may slip by.
    const { peer } = programs()
    const client = box.start('pod', process.execPath, [peer, 'loop', REMOTE, '9090', '300'])
    for (const list of [listB, listA, listB, listA, listB]) await initOk(t, box, { ...env, ISTIO_SERVICES_FILE: list })
    const line = await client.waitForLine(l => l.includes('"landed"'), 60_000)
    t.same(JSON.parse(line), { landed: { proxy: 300 } }, 'all 300 connections were captured across five list swaps')
    await initOk(t, box, { ...env, ISTIO_SERVICES_FILE: listB }, ['verify'])
  })
}
