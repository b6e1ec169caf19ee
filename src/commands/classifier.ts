// classifier: the node-level net_cls classifier (one per node, e.g. a DaemonSet with hostPID and the host's
// cgroupfs). Serves until SIGTERM or SIGINT.

import { mountNetCls } from '../cgroup/net-cls.js'
import { startClassifier } from '../classifier/server.js'
import type { Io } from '../io.js'
import type { Logger } from '../log.js'
import type { AgentSettings, ClassifierSettings, Settings } from '../settings/types.js'
import { hex } from '../text.js'

export const runClassifier = async (
  settings: Settings,
  classifier: ClassifierSettings,
  agent: AgentSettings,
  io: Io,
  logger: Logger,
): Promise<number> => {
  const hierarchy = await mountNetCls(agent.netClsRoot, io.exec)
  const policy = {
    uids: classifier.allowedUids.length > 0 ? classifier.allowedUids : [settings.proxyUid],
    classids: classifier.allowedClassids.length > 0 ? classifier.allowedClassids : [settings.netClsId],
  }
  const server = await startClassifier({ socket: classifier.socket, hierarchy, policy, logger })
  logger.event(
    'listening',
    `classifier on ${classifier.socket} (net_cls at ${hierarchy}) serves UIDs ${policy.uids.join(', ')} with classids ${policy.classids.map(hex).join(', ')}`,
  )
  const signal = await new Promise<NodeJS.Signals>(resolve => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
  })
  await server.close()
  logger.event('stopped', `classifier stopped on ${signal}`)
  return 0
}
