// Istio's configurations, each with its traffic matrix, on nftables: part 4 of 4 (see test/helpers/istio-matrix.ts).
import t from 'tap'
import { kernelAvailable } from '../../helpers/kernel.js'
import { runMatrix } from '../../helpers/istio-run.js'

t.test("nftables: every connection lands where Istio's rules land it", async t => {
  if (!kernelAvailable(t)) return
  await runMatrix(t, 'nftables', 4)
})
