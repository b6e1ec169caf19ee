// What injection refuses and warns about, each naming the field a reader must change. Pure. A refusal means no
// proxy that would be wrong or unsafe: rules in the node's own namespace (hostNetwork), an app whose traffic the
// rules exempt (it runs as the proxy's UID), a cluster component (kube-system), our own pods.

import type { Effective } from './settings.js'
import { agentNeeds, isReservedName, type JsonObject, type Layout, proxyIsOurs } from './containers.js'

export type RefusalKind =
  | 'malformed'
  | 'kube-system'
  | 'itself'
  | 'host-network'
  | 'reserved-name'
  | 'proxy-uid'
  | 'method'
  | 'annotation'
  | 'app-capabilities'

export interface Finding {
  /** The field, from the object's root: spec.template.spec.hostNetwork. */
  readonly field: string
  readonly message: string
}

export interface Refusal extends Finding {
  readonly kind: RefusalKind
}

/** A container of the user's, with where it sits: spec.initContainers[0]. */
export interface UserContainer {
  readonly field: string
  readonly container: JsonObject
}

const record = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined

const nameOf = (c: UserContainer): string => JSON.stringify(c.container['name'])

/** hostNetwork, kube-system and our own pods: refused whatever the settings. Pure. */
export const refuseTemplate = (template: JsonObject, namespace: string | undefined, at: string): Refusal[] => {
  const metadata = record(template['metadata']) ?? {}
  const spec = record(template['spec']) ?? {}
  const labels = record(metadata['labels']) ?? {}
  return [
    ...(namespace === 'kube-system'
      ? [
          {
            kind: 'kube-system' as const,
            field: 'metadata.namespace',
            message: 'is kube-system: cluster components are never injected (capturing DNS, the CNI or ingress can cut the cluster off from itself)',
          },
        ]
      : []),
    ...(labels['app.kubernetes.io/name'] === 'sidecar-redirect'
      ? [
          {
            kind: 'itself' as const,
            field: `${at}metadata.labels["app.kubernetes.io/name"]`,
            message:
              "is sidecar-redirect: this is one of sidecar-redirect's own pods (the webhook, the node agent, the classifier), which are never injected",
          },
        ]
      : []),
    ...(spec['hostNetwork'] === true
      ? [
          {
            kind: 'host-network' as const,
            field: `${at}spec.hostNetwork`,
            message: "is true: the pod shares the node's network namespace, so its rules would capture the node's traffic",
          },
        ]
      : []),
  ]
}

/** A container of the user's with one of our names: it would be taken for ours and removed by uninject. Pure. */
export const refuseReservedNames = (containers: readonly UserContainer[], volumes: readonly UserContainer[]): Refusal[] =>
  [...containers, ...volumes]
    .filter(c => typeof c.container['name'] === 'string' && isReservedName(c.container['name']))
    .map(c => ({
      kind: 'reserved-name' as const,
      field: `${c.field}.name`,
      message: `is ${nameOf(c)}: names starting with sidecar-redirect are the injector's (a pod that already has the chart's templates' containers is captured already; opt it out with inject.sidecar-redirect.io/inject: disabled)`,
    }))

const effectiveId = (c: UserContainer, podContext: Record<string, unknown>, key: 'runAsUser' | 'runAsGroup'): { id: unknown; field: string } => {
  const own = record(c.container['securityContext'])?.[key]
  return own !== undefined ? { id: own, field: `${c.field}.securityContext.${key}` } : { id: podContext[key], field: `spec.securityContext.${key}` }
}

/**
 * The proxy's identity is exempt from capture with methods uid and explicit: an app container (init containers
 * too) running as that UID, or with that GID as its group, would bypass the proxy entirely. Pure.
 */
export const refuseProxyIdentity = (
  e: Effective,
  containers: readonly UserContainer[],
  podContext: Record<string, unknown>,
  at: string,
): Refusal[] => {
  if (e.capture.outboundMethod !== 'uid' && e.capture.outboundMethod !== 'explicit') return []
  return containers.flatMap(c => {
    const uid = effectiveId(c, podContext, 'runAsUser')
    const gid = effectiveId(c, podContext, 'runAsGroup')
    const field = (f: string) => (f.startsWith('spec.securityContext') ? `${at}${f}` : f)
    return [
      ...(uid.id === e.capture.proxyUid
        ? [
            {
              kind: 'proxy-uid' as const,
              field: field(uid.field),
              message: `is ${e.capture.proxyUid}, the proxy's UID (ISTIO_PROXY_UID), for container ${nameOf(c)}: its traffic would never be captured. Give the app or the proxy another UID`,
            },
          ]
        : []),
      ...(e.capture.proxyGid !== undefined && gid.id === e.capture.proxyGid
        ? [
            {
              kind: 'proxy-uid' as const,
              field: field(gid.field),
              message: `is ${e.capture.proxyGid}, the proxy's GID (ISTIO_PROXY_GID), for container ${nameOf(c)}: its traffic would never be captured`,
            },
          ]
        : []),
    ]
  })
}

/** Methods and modes that need something the proxy's image or the pod cannot give, with the way out. Pure. */
export const refuseMethod = (e: Effective, at: string): Refusal[] => {
  const needs = agentNeeds(e.capture)
  const refusals: Refusal[] = []
  const refuse = (message: string): void => void refusals.push({ kind: 'method', field: `${at}spec`, message })
  if (needs.length > 0 && !proxyIsOurs(e.inject)) {
    refuse(
      `cannot get a proxy of image ${JSON.stringify(e.inject.proxyImage)}: ${needs.join('; ')}. Only this project's agent (entrypoint run) can start the proxy so: build your proxy's image FROM ${e.inject.image.replace(/:[^/:@]*$/, '')} with your proxy binary in it and set ISTIO_INJECT_PROXY_AGENT=true and ISTIO_INJECT_PROXY_COMMAND, or use method uid`,
    )
  }
  if (needs.length > 0 && proxyIsOurs(e.inject) && e.inject.proxyImage !== undefined && e.inject.proxyCommand === undefined) {
    refuse('needs ISTIO_INJECT_PROXY_COMMAND: the agent starts the proxy as `/app/entrypoint run -- COMMAND`, so the proxy binary must be named')
  }
  if (e.inject.mode === 'cni') {
    const netAdmin = needs.filter(n => n.includes('CAP_NET_ADMIN'))
    if (netAdmin.length > 0) refuse(`cannot be injected in mode cni: ${netAdmin.join('; ')}, and CNI mode keeps every capability out of the pod`)
    if (e.capture.outboundMethod === 'cgroup' && e.agent.classifierSocket === undefined) {
      refuse(
        'cannot be injected in mode cni with method cgroup without the node classifier (ISTIO_CLASSIFIER_SOCKET): the agent would start as root with SETUID, SETGID and SETPCAP',
      )
    }
    if (e.inject.helperUid === e.capture.proxyUid || e.inject.helperUid === e.capture.proxyGid) {
      refuse(`cannot be validated: ISTIO_INJECT_HELPER_UID ${e.inject.helperUid} is the proxy's UID or GID, whose traffic is exempt`)
    }
  }
  return refusals
}

const CAPABILITY = (name: string) => (c: unknown) => typeof c === 'string' && [name, `CAP_${name}`, 'ALL'].includes(c.toUpperCase())

/**
 * NET_RAW lets an app send packets of its own making past the nat table, and NET_ADMIN lets it change or remove
 * the rules: an app container that keeps the one (does not drop it or ALL, or adds it back) or gets the other
 * (added, or privileged) can escape capture. Pure.
 */
export const findEscapeCapabilities = (containers: readonly UserContainer[]): Finding[] =>
  containers.flatMap(c => {
    const sc = record(c.container['securityContext']) ?? {}
    const caps = record(sc['capabilities']) ?? {}
    const add = Array.isArray(caps['add']) ? caps['add'] : []
    const drop = Array.isArray(caps['drop']) ? caps['drop'] : []
    const privileged = sc['privileged'] === true
    const findings: Finding[] = []
    if (privileged || add.some(CAPABILITY('NET_ADMIN'))) {
      findings.push({
        field: `${c.field}.securityContext${privileged ? '.privileged' : '.capabilities.add'}`,
        message: `gives container ${nameOf(c)} NET_ADMIN: it can change or remove the capture rules`,
      })
    }
    if (privileged || add.some(CAPABILITY('NET_RAW')) || !drop.some(CAPABILITY('NET_RAW'))) {
      findings.push({
        field: `${c.field}.securityContext.capabilities`,
        message: `leaves container ${nameOf(c)} NET_RAW: raw sockets send packets the nat table never redirects. Add NET_RAW (or ALL) to capabilities.drop`,
      })
    }
    return findings
  })

/** Warnings about the layout: a classic proxy keeps a Job's pod running after its app exits. Pure. */
export const layoutWarnings = (layout: Layout, spec: Record<string, unknown>, at: string): Finding[] =>
  layout === 'classic' && (spec['restartPolicy'] === 'Never' || spec['restartPolicy'] === 'OnFailure')
    ? [
        {
          field: `${at}spec.restartPolicy`,
          message: `is ${spec['restartPolicy']}, and in the classic layout the proxy is an ordinary container that does not exit when the app does: the pod (a Job's) never completes. The native layout (Kubernetes 1.29 and later) stops the proxy after the app`,
        },
      ]
    : []
