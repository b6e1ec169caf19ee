// Two pod runs side by side never meet (scripts/test/pods.sh): two test processes get networks on different /24s,
// and what a run killed half-way left (pods, containers, networks, network namespaces, its image tag) is removed by
// the next run's start, while a live run's things stay.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { runForStatus } from '../../../src/exec/processes.js'
import { createNetwork, IMAGE, NETWORK, networkSubnet, podman, prepareNetwork, ROOT, RUN, runPodman } from '../../helpers/podman.js'

const RUNS = '/tmp/sr-runs'
mkdirSync(RUNS, { recursive: true })
const clean = (...args: string[]) => runForStatus('bash', [`${ROOT}scripts/test/pods-clean.sh`, ...args])
const exists = async (...args: string[]): Promise<boolean> => (await runPodman([...args])).exitCode === 0
const netnsExists = async (name: string): Promise<boolean> =>
  (await runForStatus('ip', ['netns', 'list'])).output.split('\n').some(l => l.split(' ')[0] === name)

t.test('two test processes, each with its own network, take different subnets of 198.18.100.0-255.0/24', async t => {
  await prepareNetwork(t)
  const other = `sr-test-${RUN}-other`
  t.teardown(() => runPodman(['network', 'rm', '-f', other]))
  const subnet = await createNetwork(other)
  t.not(subnet, networkSubnet(), `${NETWORK} has ${networkSubnet()}, ${other} has ${subnet}`)
  for (const s of [subnet, networkSubnet()]) t.match(s, /^198\.18\.(1\d\d|2[0-4]\d|25[0-5])\.0\/24$/)
  t.equal(await podman('network', 'inspect', other, '--format', '{{range .Subnets}}{{.Subnet}}{{end}}'), subnet, 'podman has it so')
})

t.test("a dead run's leftovers go at the next run's start; a live run's stay", async t => {
  // A dead run: a process that has exited. A live one: this process, by its pid and start time.
  const gone = await runForStatus('sh', ['-c', 'echo $$'])
  const dead = `sweepdead${process.pid}`
  const live = `sweeplive${process.pid}`
  const start = readFileSync(`/proc/${process.pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ')[19]
  writeFileSync(`${RUNS}/${dead}`, `${gone.output.trim()} 1\n`)
  writeFileSync(`${RUNS}/${live}`, `${process.pid} ${start}\n`)
  t.teardown(async () => {
    await clean('run', dead)
    await clean('run', live)
    for (const id of [dead, live]) rmSync(`${RUNS}/${id}`, { force: true })
  })
  for (const id of [dead, live]) {
    await createNetwork(`sr-test-${id}-1`)
    await podman('create', '--name', `sr-sweep-${id}-1`, '--network', `sr-test-${id}-1`, IMAGE)
    await podman('pod', 'create', '--name', `sr-sweep-pod-${id}-1`)
    await podman('tag', IMAGE, `localhost/sidecar-redirect:run-${id}`)
    t.equal((await runForStatus('ip', ['netns', 'add', `sr-sweep-${id}-1`])).exitCode, 0)
  }
  const swept = await clean('dead')
  t.equal(swept.exitCode, 0, { output: swept.output })
  t.match(swept.output, `removing what run ${dead} left`)
  t.notMatch(swept.output, live)
  for (const [id, left] of [
    [dead, false],
    [live, true],
  ] as const) {
    t.same(
      [
        await exists('network', 'exists', `sr-test-${id}-1`),
        await exists('container', 'exists', `sr-sweep-${id}-1`),
        await exists('pod', 'exists', `sr-sweep-pod-${id}-1`),
        await exists('image', 'exists', `localhost/sidecar-redirect:run-${id}`),
        await netnsExists(`sr-sweep-${id}-1`),
        existsSync(`${RUNS}/${id}`),
      ],
      [left, left, left, left, left, left],
      `${id}: network, container, pod, image tag, netns and entry ${left ? 'all stay' : 'all gone'}`,
    )
  }
  t.ok(await exists('image', 'exists', IMAGE), 'the image under test keeps its own tag')
})
