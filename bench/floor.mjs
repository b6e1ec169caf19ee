// The floor of init's design on a given Node: a script that only starts the processes init starts, in the same
// rounds (side by side within a round, one round after another), with plain node:child_process and no logic at
// all. bench/init.mjs runs it beside init, so the gap between the two is what our own code costs, and the gap
// between it and `node -e 0` is what Node and the tools cost whatever the code does.
//   node bench/floor.mjs re-run          one round: both families' iptables-nft-save, `nft list ruleset` and the two
//                                        reads of the devices (`ip -j link show`, `tc -j qdisc show`)
//   node bench/floor.mjs fresh PAYLOAD   that round, then both restores of PAYLOAD (`plan` output), then both saves
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

const run = (file, args, input) =>
  new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, LC_ALL: 'C' }, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    const out = []
    child.stdout.on('data', chunk => out.push(chunk))
    child.stderr.on('data', chunk => out.push(chunk))
    child.once('close', code => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${file} exited ${code}: ${Buffer.concat(out)}`))))
    child.stdin?.end(input)
  })

const saves = () => [run('iptables-nft-save', []), run('ip6tables-nft-save', [])]

await Promise.all([...saves(), run('nft', ['list', 'ruleset']), run('ip', ['-j', 'link', 'show']), run('tc', ['-j', 'qdisc', 'show'])])
if (process.argv[2] === 'fresh') {
  const [ipv4, ipv6] = readFileSync(process.argv[3], 'utf8').split(/^# ipv6.*\n/m)
  await Promise.all([run('iptables-nft-restore', ['--noflush', '-w', '5'], ipv4), run('ip6tables-nft-restore', ['--noflush', '-w', '5'], ipv6)])
  await Promise.all(saves())
}
