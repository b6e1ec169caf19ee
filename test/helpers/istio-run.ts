// Runs the traffic matrix of Istio's configurations (istio-matrix.ts) on one backend: for each configuration,
// `entrypoint istio-iptables` with Istio's flags (applied, read back exactly, whole path checked and probed, or
// it exits non-zero), every cell's real connection compared with its expectation, then `clean istio-iptables`,
// after which the pod's netfilter and routing are exactly as before the first configuration.
import type { Test } from 'tap'
import { BACKEND_ARGS, type Backend } from './istio-box.js'
import { snapshot } from './kernel.js'
import {
  BASE_ISTIO_ARGS,
  CASES,
  GROUP_FILE,
  RESOLV_DEFAULT,
  cellsFor,
  expected,
  identity,
  type Cell,
  type IstioCase,
  type Landing,
} from './istio-matrix.js'
import { withIstioPod, type Family, type IstioPod } from './istio-pod.js'

interface Reply {
  readonly label?: string
  readonly local?: string
  readonly originalDst?: { address: string; port: number } | null
}

const plain = (address: string): string => address.replace(/^::ffff:(?=\d+\.)/, '')

/** What a reply says about where the connection landed, in the matrix's words. */
const landingOf = (cell: Cell, line: Record<string, unknown> | undefined): Landing | string => {
  if (!line?.['ok']) return `nowhere (${String(line?.['error'] ?? 'no reply')})`
  const reply = line['reply'] as Reply
  const dst = reply.originalDst
  const toTarget = dst?.address === cell.to && dst.port === cell.port
  const local = reply.local ?? ''
  const at = local.lastIndexOf(':')
  // TPROXY hands the connection over unchanged: its local address is the original destination.
  const asAddressed = plain(local.slice(0, at)) === cell.to && Number(local.slice(at + 1)) === cell.port
  if (reply.label === 'proxy' && toTarget) return 'proxy'
  if (reply.label === 'dns' && toTarget) return 'dns'
  if (reply.label === 'inbound' && (toTarget || (!dst && asAddressed))) return 'inbound'
  if (reply.label === cell.label && !dst) return 'direct'
  return `${reply.label} (original destination ${dst ? `${dst.address}:${dst.port}` : 'none'}, local ${local})`
}

const target = (cell: Cell): string => `${cell.to.includes(':') ? `[${cell.to}]` : cell.to}:${cell.port}${cell.bind ? `@${cell.bind}` : ''}`

/** Every cell of both families, one connecting process per host and identity, the processes side by side. */
const checkCells = async (t: Test, pod: IstioPod, c: IstioCase, backend: Backend): Promise<void> => {
  const flavour = backend === 'nftables' ? 'nftables' : 'iptables'
  const cells = (['ipv4', 'ipv6'] as const).flatMap(family => cellsFor(c, family).map(cell => ({ family, cell })))
  const groups = new Map<string, { family: Family; cell: Cell }[]>()
  for (const entry of cells) {
    const key = `${entry.cell.from}/${entry.cell.who ?? 'root'}`
    groups.set(key, [...(groups.get(key) ?? []), entry])
  }
  const results = await Promise.all(
    [...groups.values()].map(async group => {
      const first = group[0]!.cell
      const as = first.who === undefined ? undefined : identity(c, first.who)
      return {
        group,
        lines: await pod.connectMany(
          first.from,
          group.map(e => target(e.cell)),
          as,
        ),
      }
    }),
  )
  for (const { group, lines } of results) {
    for (const [i, { family, cell }] of group.entries()) {
      t.equal(landingOf(cell, lines[i]), expected(c, family, flavour, cell.key), `${family} ${cell.key}`)
    }
  }
}

// Every table the cases write in, so their cleans can be compared with one snapshot: a table iptables creates
// stays (empty) after clean, as docs/capture.md says.
const EVERY_TABLE = [
  ['-m', 'TPROXY', '-b', '*', '-i', '*', '--redirect-dns', '--capture-all-dns', '--drop-invalid', '--dual-stack'],
  ['-b', '*', '--dual-stack'],
]

/** The matrix's cases are run in this many parts, a test file each: a file has 300 s, on a loaded machine too. */
const PARTS = 4

/** runMatrix runs one part of the cases on one backend (part 1 to PARTS). */
export const runMatrix = async (t: Test, backend: Backend, part: number): Promise<void> => {
  const pod = await withIstioPod(t)
  const files = { resolvConf: RESOLV_DEFAULT, group: GROUP_FILE }
  for (const args of EVERY_TABLE.flatMap(flags => [
    ['istio-iptables', ...flags],
    ['clean', 'istio-iptables'],
  ])) {
    const warm = await pod.entrypoint([...args, ...BACKEND_ARGS[backend]], files)
    if (warm.exitCode !== 0) throw new Error(`${args.join(' ')}: ${warm.output}`)
  }
  const before = await snapshot(pod.box)
  // ISTIO_MATRIX_CASES=name,name runs only those (for a quick look while changing the plan).
  const only = process.env['ISTIO_MATRIX_CASES']?.split(',')
  const size = Math.ceil(CASES.length / PARTS)
  const cases = CASES.slice((part - 1) * size, part * size)
  for (const c of cases.filter(c => !only || only.includes(c.name))) {
    await t.test(`${c.source} ${c.name}`, async t => {
      const files = { resolvConf: c.resolvConf ?? RESOLV_DEFAULT, group: GROUP_FILE }
      const run = await pod.entrypoint(['istio-iptables', ...BASE_ISTIO_ARGS, ...c.args, ...BACKEND_ARGS[backend]], files, c.env)
      t.equal(run.exitCode, 0, 'istio-iptables applies, reads back exactly and passes its live probe', { output: run.output })
      await checkCells(t, pod, c, backend)
      const clean = await pod.entrypoint(['clean', 'istio-iptables', ...BACKEND_ARGS[backend]], files)
      t.equal(clean.exitCode, 0, 'clean istio-iptables', { output: clean.output })
      t.equal(await snapshot(pod.box), before, 'after clean, netfilter and routing are as before')
    })
  }
}
