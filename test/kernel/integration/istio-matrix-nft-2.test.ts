// Istio's configurations, each with its traffic matrix, on iptables-nft: part 2 of 4 (see test/helpers/istio-matrix.ts).
import t from 'tap'
import { kernelAvailable } from '../../helpers/kernel.js'
import { runMatrix } from '../../helpers/istio-run.js'

t.test("iptables-nft: every connection lands where Istio's rules land it", async t => {
  if (!kernelAvailable(t)) return
  await runMatrix(t, 'iptables-nft', 2)
})
