// The stand-in relay the image ships (dist/peer.mjs proxy), in a network namespace of its own (`unshare -n`, gone
// with the process): clients that reset the moment they connect, as `entrypoint ready` and TCP probes may, do not
// take it down. An unhandled ECONNRESET once killed it and failed the chart's first-connection test now and then.
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { kernelAvailable } from '../helpers/kernel.js'
import { untappedCall } from '../helpers/processes.js'

const PEER = new URL('../../dist/peer.mjs', import.meta.url).pathname

// Twenty clients that reset as soon as they are connected, then one that the relay must still accept.
const CLIENTS = `
const net = require('node:net')
const connect = reset => new Promise((resolve, reject) => {
  const s = net.connect({ host: '127.0.0.1', port: 15001 }, () => { reset ? s.resetAndDestroy() : s.end(); resolve() })
  s.on('error', reset ? resolve : reject)
})
;(async () => { for (let i = 0; i < 20; i++) await connect(true); await new Promise(r => setTimeout(r, 200)); await connect(false) })()
  .catch(error => { console.error(error.message); process.exit(1) })
`

t.test('the stand-in relay outlives clients that reset as soon as they connect', async t => {
  if (!kernelAvailable(t)) return
  // The relay is stopped at the end whatever happened: it would outlive the shell in its namespace.
  const script = `ip link set lo up; "$0" ${PEER} proxy 15001 & sleep 1; "$0" -e "$1" && kill -0 $! && echo alive; kill $!`
  const result = spawnSync(...untappedCall('unshare', '-n', 'sh', '-c', script, process.execPath, CLIENTS), {
    encoding: 'utf8',
    timeout: 30_000,
  })
  t.match(result.stdout, /\{"ready":true/, 'the relay listened')
  t.match(result.stdout, /^alive$/m, 'and is still running after the resets')
  t.notMatch(`${result.stdout}${result.stderr}`, /ECONNRESET/, 'with no unhandled error')
})
