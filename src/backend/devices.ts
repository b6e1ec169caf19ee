// Reads the hooks on the pod's devices for the whole-path check: XDP programs (`ip -j link show`) and tc filters
// (`tc -j qdisc show`, then the filters of each place that can hold them). A pod whose devices have only their
// default qdiscs costs two processes, run beside the other reads; filters and classes are read only where a qdisc
// can hold them.

import { EnvironmentError } from '../errors.js'
import { CommandFailed, isNotInstalled, type Exec } from '../exec/exec.js'
import { runIproute } from './iproute/classify.js'
import { classIds, filterPlaces, seenTcTables, seenXdpTables, type LinkJson, type TcFilter, type TcQdisc, type TcRead } from '../path/from-devices.js'
import type { SeenTable } from '../path/model.js'
import { firstLine } from '../text.js'

const run = async (exec: Exec, file: 'ip' | 'tc', args: string[]): Promise<string> => {
  try {
    return (await runIproute(exec, file, args)).stdout
  } catch (error) {
    if (isNotInstalled(error)) {
      throw new EnvironmentError(`the whole-path check reads the pod's devices with ${file}, which is not installed (the iproute2 package)`, {
        cause: error,
      })
    }
    if (error instanceof CommandFailed)
      throw new EnvironmentError(`the whole-path check could not read the pod's devices: ${firstLine(error.message)}`, { cause: error })
    throw error
  }
}

const json = <T>(text: string): T[] => (text.trim() === '' ? [] : (JSON.parse(text) as T[]))

/** readDeviceHooks reads every device's XDP programs and tc filters into the whole-path model. */
export const readDeviceHooks = async (exec: Exec): Promise<SeenTable[]> => {
  const [links, qdiscs] = await Promise.all([
    run(exec, 'ip', ['-j', 'link', 'show']).then(text => json<LinkJson>(text)),
    run(exec, 'tc', ['-j', 'qdisc', 'show']).then(text => json<TcQdisc>(text)),
  ])
  const places = filterPlaces(qdiscs)
  // Classes of the devices whose qdiscs have handles: a filter may hang on each class too.
  const classful = [...new Set(places.filter(p => p.hook === 'egress' && p.parent !== 'egress').map(p => p.dev))]
  const classes = await Promise.all(
    classful.map(async dev =>
      classIds(await run(exec, 'tc', ['class', 'show', 'dev', dev])).map(id => ({ dev, parent: id, hook: 'egress' as const })),
    ),
  )
  const reads: TcRead[] = await Promise.all(
    [...places, ...classes.flat()].map(async place => {
      const where = place.parent === 'ingress' || place.parent === 'egress' ? [place.parent] : ['parent', place.parent]
      const filters = json<TcFilter>(await run(exec, 'tc', ['-j', 'filter', 'show', 'dev', place.dev, ...where]))
      return { ...place, filters }
    }),
  )
  return [...seenXdpTables(links), ...seenTcTables(reads)]
}
