// Istio's configurations, each with its traffic matrix, on iptables-legacy: part 3 of 4 (see test/helpers/istio-matrix.ts).
import t from 'tap'
import { kernelAvailable } from '../../helpers/kernel.js'
import { runMatrix } from '../../helpers/istio-run.js'

t.test("iptables-legacy: every connection lands where Istio's rules land it", async t => {
  if (!kernelAvailable(t)) return
  await runMatrix(t, 'iptables-legacy', 3)
})
