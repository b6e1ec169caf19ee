// The containers and volumes injection adds, built from the effective settings. Pure. Our names all start with
// `sidecar-redirect-` (uninject removes exactly those the status lists), and every container of ours states its
// whole security context, whatever the pod's defaults say.

import { formatSettings } from '../settings/format.js'
import { parseSettings } from '../settings/parse.js'
import type { AgentSettings, InjectSettings, KubeVersion, Settings } from '../settings/types.js'
import type { Effective } from './settings.js'

export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json }
export type JsonObject = { readonly [key: string]: Json }

export const NAMES = {
  init: 'sidecar-redirect-init',
  validate: 'sidecar-redirect-validate',
  proxy: 'sidecar-redirect-proxy',
  hold: 'sidecar-redirect-hold',
  classifierVolume: 'sidecar-redirect-classifier',
  netClsVolume: 'sidecar-redirect-net-cls',
} as const

/** Names a user's container or volume may not take: ours, and the chart's include-able templates' init container. */
export const isReservedName = (name: string): boolean => name === 'sidecar-redirect' || name.startsWith('sidecar-redirect-')

export type Layout = 'native' | 'classic'

// Native sidecars (init containers with restartPolicy Always) are on by default from Kubernetes 1.29 (beta).
const NATIVE_FROM: KubeVersion = { major: 1, minor: 29 }

/** chooseLayout: the layout asked for, or for auto the one the Kubernetes version supports. Pure. */
export const chooseLayout = (inject: InjectSettings): Layout => {
  if (inject.layout !== 'auto') return inject.layout
  const v = inject.kubeVersion
  return v === undefined || v.major > NATIVE_FROM.major || (v.major === NATIVE_FROM.major && v.minor >= NATIVE_FROM.minor) ? 'native' : 'classic'
}

/** Why the proxy needs CAP_NET_ADMIN or root at start, which only our agent can hand it and take away again. */
export const agentNeeds = (capture: Settings): string[] => [
  ...(capture.outboundMethod === 'mark' ? ['ISTIO_OUTBOUND_METHOD=mark: the proxy sets SO_MARK, which takes CAP_NET_ADMIN'] : []),
  ...(capture.outboundMethod === 'cgroup' ? ['ISTIO_OUTBOUND_METHOD=cgroup: the proxy must be put into its net_cls group before it starts'] : []),
  ...(capture.inboundInterceptionMode === 'TPROXY'
    ? ['ISTIO_INBOUND_INTERCEPTION_MODE=TPROXY: the proxy listens with IP_TRANSPARENT, which takes CAP_NET_ADMIN']
    : []),
]

/** Whether the proxy's container runs our agent (`/app/entrypoint run -- ...`). */
export const usesAgent = (e: Effective): boolean => e.inject.proxyAgent === 'true' || (agentNeeds(e.capture).length > 0 && proxyIsOurs(e.inject))

/** Whether the proxy's image is ours (or named as holding our agent), so /app/entrypoint is there. */
export const proxyIsOurs = (inject: InjectSettings): boolean =>
  inject.proxyImage === undefined || inject.proxyImage === inject.image || inject.proxyAgent === 'true'

// Every variable the rules read, as the injector's settings have them; only those that differ from the defaults
// (and the three a reader looks for first) are written, so a pod spec says what is special about it.
const ALWAYS = new Set(['ISTIO_PROXY_PORT', 'ISTIO_PROXY_UID', 'ISTIO_OUTBOUND_METHOD'])
let defaults: Record<string, string> | undefined

const envList = (entries: Record<string, string>): Json[] => Object.entries(entries).map(([name, value]) => ({ name, value }))

/** captureEnv: the ISTIO_* variables the init (or validate) container needs to plan the same rules. Pure. */
export const captureEnv = (capture: Settings): Record<string, string> => {
  defaults ??= formatSettings(parseSettings({}))
  const all = formatSettings(capture)
  return Object.fromEntries(Object.entries(all).filter(([name, value]) => ALWAYS.has(name) || defaults![name] !== value))
}

const SECCOMP = { type: 'RuntimeDefault' }

const unprivileged = (uid: number, gid: number, readOnlyRoot: boolean): JsonObject => ({
  runAsUser: uid,
  runAsGroup: gid,
  runAsNonRoot: true,
  ...(readOnlyRoot && { readOnlyRootFilesystem: true }),
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: SECCOMP,
})

/** The first of our init containers: the NET_ADMIN one that programs the rules, or CNI mode's validate. */
export const captureContainer = (e: Effective): JsonObject => {
  const common = { image: e.inject.image, imagePullPolicy: e.inject.pullPolicy }
  if (e.inject.mode === 'cni') {
    return {
      name: NAMES.validate,
      ...common,
      args: ['validate'],
      env: envList(captureEnv(e.capture)),
      ...(e.inject.resources && { resources: e.inject.resources }),
      securityContext: unprivileged(e.inject.helperUid, e.inject.helperUid, true),
    }
  }
  return {
    name: NAMES.init,
    ...common,
    args: ['init'],
    env: envList(captureEnv(e.capture)),
    ...(e.inject.resources && { resources: e.inject.resources }),
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: SECCOMP,
    },
  }
}

const STAND_IN = ['/usr/local/bin/node', '/app/dist/peer.mjs', 'proxy']

/** The proxy's own command line: the user's, or on our image the stand-in relay. */
const proxyCommandLine = (e: Effective): { command?: readonly string[]; args?: readonly string[] } => {
  const { proxyCommand, proxyArgs } = e.inject
  if (proxyCommand === undefined && proxyArgs === undefined && e.inject.proxyImage === undefined) {
    const mark = e.capture.outboundMethod === 'mark' ? ['--mark', String(e.capture.mark.value)] : []
    return { command: [...STAND_IN, String(e.capture.proxyPort), ...mark] }
  }
  return { ...(proxyCommand && { command: proxyCommand }), ...(proxyArgs && { args: proxyArgs }) }
}

const probeOf = (e: Effective, startup: boolean): JsonObject | undefined => {
  const probe = e.inject.proxyProbe
  if (probe.kind === 'none') return undefined
  if (probe.kind === 'custom') return probe.probe as JsonObject
  // The kubelet connects to the pod's address: inbound capture, if any, redirects it to the proxy port itself.
  return startup
    ? { tcpSocket: { port: e.capture.proxyPort }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: Math.max(1, e.agent.readySeconds) }
    : { tcpSocket: { port: e.capture.proxyPort }, periodSeconds: 5, timeoutSeconds: 1 }
}

/** What our agent reads in the proxy container: the capture variables it checks against, and its own. */
const agentEnv = (capture: Settings, agent: AgentSettings): Record<string, string> => ({
  ...captureEnv(capture),
  ISTIO_DRAIN_SECONDS: String(agent.drainSeconds),
  ISTIO_READY_SECONDS: String(agent.readySeconds),
  ...(agent.restart !== 'no' && { ISTIO_AGENT_RESTART: agent.restart }),
  ...(agent.classifierSocket !== undefined && { ISTIO_CLASSIFIER_SOCKET: agent.classifierSocket }),
  ...(capture.outboundMethod === 'cgroup' && agent.classifierSocket === undefined && { ISTIO_NET_CLS_ROOT: agent.netClsRoot }),
})

const dirOf = (path: string): string => path.slice(0, path.lastIndexOf('/')) || '/'

/** The host paths the proxy mounts: the classifier's socket directory, or the net_cls hierarchy to join itself. */
export const proxyVolumes = (e: Effective): JsonObject[] => {
  if (!usesAgent(e) || e.capture.outboundMethod !== 'cgroup') return []
  return e.agent.classifierSocket !== undefined
    ? [{ name: NAMES.classifierVolume, hostPath: { path: dirOf(e.agent.classifierSocket), type: 'Directory' } }]
    : [{ name: NAMES.netClsVolume, hostPath: { path: e.agent.netClsRoot, type: 'Directory' } }]
}

const READY = ['/app/entrypoint', 'ready']

/**
 * The proxy container: the user's image and command as the proxy UID with every capability dropped, or, when
 * the method needs it, our agent starting the proxy with exactly what it needs.
 */
export const proxyContainer = (e: Effective, layout: Layout): JsonObject => {
  const agent = usesAgent(e)
  const own = proxyIsOurs(e.inject)
  const line = proxyCommandLine(e)
  const netAdmin = e.capture.outboundMethod === 'mark' || e.capture.inboundInterceptionMode === 'TPROXY'
  const rootStart = agent && (netAdmin || (e.capture.outboundMethod === 'cgroup' && e.agent.classifierSocket === undefined))
  const uid = e.capture.proxyUid
  const startup = layout === 'native' ? probeOf(e, true) : undefined
  const readiness = probeOf(e, false)
  const mounts = proxyVolumes(e).map(v => ({
    name: v['name'] as string,
    mountPath: v['name'] === NAMES.classifierVolume ? dirOf(e.agent.classifierSocket ?? '/') : e.agent.netClsRoot,
    ...(v['name'] === NAMES.classifierVolume && { readOnly: true }),
  }))
  return {
    name: NAMES.proxy,
    image: e.inject.proxyImage ?? e.inject.image,
    ...(own && { imagePullPolicy: e.inject.pullPolicy }),
    ...(agent ? { command: ['/app/entrypoint'], args: ['run', '--', ...(line.command ?? []), ...(line.args ?? [])] } : line),
    ...(agent && { env: envList(agentEnv(e.capture, e.agent)) }),
    ...(e.inject.proxyResources && { resources: e.inject.proxyResources }),
    ...(layout === 'native' && { restartPolicy: 'Always' }),
    ...(startup && { startupProbe: startup }),
    ...(readiness && { readinessProbe: readiness }),
    // Classic layout: the kubelet starts the next container only once this hook returns, when the proxy listens.
    ...(layout === 'classic' && e.inject.hold && own && { lifecycle: { postStart: { exec: { command: READY } } } }),
    securityContext: rootStart
      ? {
          runAsUser: 0,
          runAsNonRoot: false,
          ...(e.inject.proxyReadOnlyRoot && { readOnlyRootFilesystem: true }),
          allowPrivilegeEscalation: false,
          capabilities: { add: [...(netAdmin ? ['NET_ADMIN'] : []), 'SETUID', 'SETGID', 'SETPCAP'], drop: ['ALL'] },
          seccompProfile: SECCOMP,
        }
      : unprivileged(uid, e.capture.proxyGid ?? uid, e.inject.proxyReadOnlyRoot),
    ...(mounts.length > 0 && { volumeMounts: mounts }),
  }
}

/**
 * The classic layout's hold for a proxy image without /app/entrypoint: a container of ours right after the proxy
 * whose postStart hook returns only once the proxy accepts connections (the pod's network is shared), so the
 * kubelet starts the app after that. It then idles until it is stopped.
 */
export const holdContainer = (e: Effective): JsonObject => ({
  name: NAMES.hold,
  image: e.inject.image,
  imagePullPolicy: e.inject.pullPolicy,
  args: ['hold'],
  env: envList({ ISTIO_PROXY_PORT: String(e.capture.proxyPort), ISTIO_READY_SECONDS: String(e.agent.readySeconds) }),
  lifecycle: { postStart: { exec: { command: READY } } },
  ...(e.inject.resources && { resources: e.inject.resources }),
  securityContext: unprivileged(e.inject.helperUid, e.inject.helperUid, true),
})

/** Whether the classic layout needs the hold container: asked for, and the proxy's image cannot run `ready`. */
export const needsHoldContainer = (e: Effective, layout: Layout): boolean => layout === 'classic' && e.inject.hold && !proxyIsOurs(e.inject)
