// What the kubelet does from the node for a tcpSocket or httpGet probe or hook: one connection, a verdict by exit
// code (0 passed, 1 failed) and a one-line reason. Run in the node's network namespace by the pod runner:
//   node node-probe.mjs tcp HOST PORT TIMEOUT_MS
//   node node-probe.mjs http HOST PORT PATH TIMEOUT_MS HEADERS_JSON
import http from 'node:http'
import net from 'node:net'

const [kind, host, port, ...rest] = process.argv.slice(2)
const done = (ok, reason) => {
  process.stdout.write(`${reason}\n`)
  process.exit(ok ? 0 : 1)
}
if (kind === 'tcp') {
  const socket = net.connect({ host, port: Number(port), timeout: Number(rest[0]) })
  socket.on('connect', () => done(true, `connected to ${host}:${port}`))
  socket.on('timeout', () => done(false, `no connection to ${host}:${port} within ${rest[0]} ms`))
  socket.on('error', error => done(false, error.message))
} else if (kind === 'http') {
  const [path, timeout, headers] = rest
  // As the kubelet's prober: any status from 200 to 399 passes.
  const request = http.get(
    { host, port: Number(port), path, timeout: Number(timeout), headers: { 'User-Agent': 'kube-probe/1.29', ...JSON.parse(headers) } },
    response => {
      response.resume()
      done(response.statusCode >= 200 && response.statusCode < 400, `HTTP ${response.statusCode}`)
    },
  )
  request.on('timeout', () => request.destroy(new Error(`no answer within ${timeout} ms`)))
  request.on('error', error => done(false, error.message))
} else {
  done(false, `unknown probe kind ${kind}`)
}
