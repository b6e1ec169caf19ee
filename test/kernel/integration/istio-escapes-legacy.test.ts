// Each whole-path escape in Istio's mode on iptables-legacy (see test/helpers/istio-escapes.ts): one file per backend, so
// each stays well inside tap's per-file time.
import t from 'tap'
import { runEscapes } from '../../helpers/istio-escapes.js'

runEscapes(t, 'iptables-legacy')
