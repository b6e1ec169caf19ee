// Traffic decides: a connection is made for real, and the listener that took it says who it is and what
// SO_ORIGINAL_DST it saw. The proxy port's listener is labelled "proxy"; every other listener has its own label.

import type { Test } from 'tap'
import type { ConnectOptions, Sandbox, Where } from '../../src/sandbox/sandbox.js'
import { POD, POD6, REMOTE, REMOTE6 } from './kernel.js'

export interface Path {
  readonly from: Where
  readonly host: string
  readonly port: number
  readonly as?: ConnectOptions
}

const describe = (p: Path): string =>
  `${p.from}${p.as?.uid === undefined ? '' : ` (uid ${p.as.uid}${p.as.gid === undefined ? '' : ` gid ${p.as.gid}`})`} -> ${p.host}:${p.port}`

/** The connection lands on the proxy, which sees the original destination. */
export const expectCaptured = async (t: Test, box: Sandbox, path: Path): Promise<void> => {
  const result = await box.connect(path.from, path.host, path.port, path.as)
  t.same(
    { label: result.reply?.label, originalDst: result.reply?.originalDst },
    { label: 'proxy', originalDst: { address: path.host, port: path.port } },
    `captured: ${describe(path)}`,
    { result },
  )
}

/** The connection reaches the listener it was addressed to, untouched by NAT. */
export const expectBypassed = async (t: Test, box: Sandbox, path: Path, label: string): Promise<void> => {
  const result = await box.connect(path.from, path.host, path.port, path.as)
  t.same({ label: result.reply?.label, originalDst: result.reply?.originalDst }, { label, originalDst: null }, `bypassed: ${describe(path)}`, {
    result,
  })
}

/**
 * The default capture in both families, with listeners already serving (`proxy` in the pod, `app` on 8080 there,
 * `remote` on 9090): an app UID's connection out is captured, the proxy UID's (1337) is not, and one coming in is.
 */
export const expectDefaultCapture = async (t: Test, box: Sandbox): Promise<void> => {
  for (const [pod, remote] of [
    [POD, REMOTE],
    [POD6, REMOTE6],
  ] as const) {
    await expectCaptured(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1000 } })
    await expectBypassed(t, box, { from: 'pod', host: remote, port: 9090, as: { uid: 1337 } }, 'remote')
    await expectCaptured(t, box, { from: 'remote', host: pod, port: 8080 })
  }
}
