// The floor of a node agent (issue 30), for bench/cni.mjs: one long-lived Node process that answers each forwarded
// CNI request by starting exactly the tools init starts, in init's rounds, each through `nsenter --net=<the pod's
// netns>`, and nothing else: no settings, no plan, no comparison. ADD: both families' iptables-nft-save and `nft list
// ruleset`; both restores of PAYLOAD (`plan` output); both saves. DEL: both saves; both restores of the removal;
// `ipset save` (what clean starts). The reply is success, in the wire format of src/cni/wire.ts.
//   node bench/floor-agent.mjs SOCKET PAYLOAD
import { spawn } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import net from 'node:net'

const [socket, payloadFile] = process.argv.slice(2)
const [add4, add6] = readFileSync(payloadFile, 'utf8').split(/^# ipv6.*\n/m)
// The removal of what ADD wrote: our jumps deleted, our chains flushed and deleted (computed once, here).
const removal = payload => {
  const chains = [...payload.matchAll(/^:(SIDECAR_\w+) /gm)].map(m => m[1])
  return payload
    .split('\n')
    .flatMap(line => {
      const jump = /^-[AI] (PREROUTING|INPUT|OUTPUT|POSTROUTING) (?:\d+ )?(.*-j SIDECAR_.*)$/.exec(line)
      if (jump) return [`-D ${jump[1]} ${jump[2]}`]
      if (line.startsWith('-A SIDECAR_')) return []
      if (line === 'COMMIT') return [...chains.map(c => `-X ${c}`), line]
      return [line]
    })
    .join('\n')
}
const [del4, del6] = [removal(add4), removal(add6)]

const run = (netns, file, args, input) =>
  new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netns}`, file, ...args], {
      env: { ...process.env, LC_ALL: 'C' },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    })
    const out = []
    child.stdout.on('data', chunk => out.push(chunk))
    child.stderr.on('data', chunk => out.push(chunk))
    child.once('close', code => (code === 0 ? resolve() : reject(new Error(`${file} exited ${code}: ${Buffer.concat(out)}`))))
    child.stdin?.end(input)
  })

const saves = netns => [run(netns, 'iptables-nft-save', []), run(netns, 'ip6tables-nft-save', [])]
const rounds = {
  ADD: async netns => {
    await Promise.all([...saves(netns), run(netns, 'nft', ['list', 'ruleset'])])
    await Promise.all([
      run(netns, 'iptables-nft-restore', ['--noflush', '-w', '5'], add4),
      run(netns, 'ip6tables-nft-restore', ['--noflush', '-w', '5'], add6),
    ])
    await Promise.all(saves(netns))
  },
  DEL: async netns => {
    await Promise.all(saves(netns))
    await run(netns, 'iptables-nft-restore', ['--noflush', '-w', '5'], del4)
    await run(netns, 'ip6tables-nft-restore', ['--noflush', '-w', '5'], del6)
    await run(netns, 'ipset', ['save']).catch(() => undefined)
  },
}

const reply = (code, stdout, stderr = '') =>
  Buffer.concat([Buffer.from(`${code} ${Buffer.byteLength(stdout)}\n`), Buffer.from(stdout), Buffer.from(stderr)])

rmSync(socket, { force: true })
net
  .createServer({ allowHalfOpen: true }, connection => {
    const chunks = []
    connection.on('data', chunk => chunks.push(chunk))
    connection.on('end', () => {
      const text = Buffer.concat(chunks).toString()
      const env = Object.fromEntries(
        text
          .slice(0, text.indexOf('\0\0') + 1)
          .split('\0')
          .filter(Boolean)
          .map(e => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      )
      const work = rounds[env.CNI_COMMAND]
      if (!work) return connection.end(reply(0, ''))
      work(env.CNI_NETNS).then(
        () => connection.end(reply(0, '{"cniVersion":"1.0.0"}\n')),
        error => connection.end(reply(1, `{"code":999,"msg":${JSON.stringify(String(error))}}\n`)),
      )
    })
  })
  .listen(socket, () => console.log('listening'))
