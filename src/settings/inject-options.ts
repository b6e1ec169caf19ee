// The injector's and the webhook's settings, one row each, beside the capture settings of options.ts and read the
// same way (env var, flag, --help, the reference table in docs/reference.md). They describe the pod to build, not rules to program.

import { ConfigError } from '../errors.js'
import type { OptionTable } from './options.js'
import { OPTIONS } from './options.js'
import type { InjectSettings, KubeVersion, ProxyProbe, WebhookSettings } from './types.js'
import { parseChoice, parseInteger } from './values.js'

/** This release: the injected init container's image tag, the chart's appVersion and package.json's version. */
export const VERSION = '0.1.0'

/** The prefix of a pod annotation that sets one capture setting for that pod (the CNI plugin reads the same). */
export const CAPTURE_ANNOTATION_PREFIX = 'sidecar-redirect.io/'
/**
 * The injector's own annotations. They live under another prefix because the node's CNI plugin takes every
 * `sidecar-redirect.io/` annotation for a capture setting and refuses one that is not.
 */
export const INJECT_ANNOTATION_PREFIX = 'inject.sidecar-redirect.io/'

// A reference as registries write them (host[:port]/path[:tag][@digest]): no whitespace, quotes or control
// characters, which would reach the kubelet and the runtime as they are.
export const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]{0,510}$/
const IMAGE_ACCEPTED = 'an image reference like registry.example/proxy:1.2 or name@sha256:<digest>'

const parseImage = (text: string, where: string): string => {
  if (!IMAGE.test(text.trim())) throw new ConfigError(where, text, IMAGE_ACCEPTED)
  return text.trim()
}

const COMMAND_ACCEPTED = 'a JSON list of strings, e.g. ["envoy","-c","/etc/envoy/envoy.yaml"], or empty'

const parseCommand = (text: string, where: string): readonly string[] | undefined => {
  if (text.trim() === '') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new ConfigError(where, text, COMMAND_ACCEPTED)
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every(item => typeof item === 'string' && !item.includes('\0'))) {
    throw new ConfigError(where, text, COMMAND_ACCEPTED)
  }
  return value as string[]
}

// The handlers a Kubernetes Probe may carry; exactly one of them.
const PROBE_HANDLERS = ['exec', 'httpGet', 'tcpSocket', 'grpc'] as const
const PROBE_ACCEPTED = `tcp (a TCP connection to the proxy port), none, or a JSON Kubernetes Probe with one of ${PROBE_HANDLERS.join(', ')}`

const parseProbe = (text: string, where: string): ProxyProbe => {
  const trimmed = text.trim()
  if (trimmed === 'tcp' || trimmed === 'none') return { kind: trimmed }
  let value: unknown
  try {
    value = JSON.parse(trimmed)
  } catch {
    throw new ConfigError(where, text, PROBE_ACCEPTED)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(where, text, PROBE_ACCEPTED)
  const handlers = PROBE_HANDLERS.filter(h => h in value)
  if (handlers.length !== 1) throw new ConfigError(where, text, PROBE_ACCEPTED)
  return { kind: 'custom', probe: value as Readonly<Record<string, unknown>> }
}

const RESOURCES_ACCEPTED =
  'a JSON Kubernetes ResourceRequirements, e.g. {"requests":{"cpu":"10m","memory":"32Mi"},"limits":{"memory":"128Mi"}}, or empty for none'

// Quantities as Kubernetes writes them (100m, 32Mi, 1.5, 2e3); the API server checks them again.
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[munk])?$/

const parseResources = (text: string, where: string): Readonly<Record<string, Readonly<Record<string, string>>>> | undefined => {
  if (text.trim() === '') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new ConfigError(where, text, RESOURCES_ACCEPTED)
  }
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
  if (!isMap(value) || !Object.entries(value).every(([k, v]) => ['requests', 'limits'].includes(k) && isMap(v)))
    throw new ConfigError(where, text, RESOURCES_ACCEPTED)
  const result: Record<string, Record<string, string>> = {}
  for (const [kind, quantities] of Object.entries(value as Record<string, Record<string, unknown>>)) {
    result[kind] = {}
    for (const [name, quantity] of Object.entries(quantities)) {
      const q = typeof quantity === 'number' ? String(quantity) : quantity
      if (typeof q !== 'string' || !QUANTITY.test(q) || !/^[a-z0-9.\-/]+$/i.test(name)) throw new ConfigError(where, text, RESOURCES_ACCEPTED)
      result[kind]![name] = q
    }
  }
  return result
}

const KUBE_VERSION = /^v?(\d{1,3})\.(\d{1,3})(\.\d{1,5})?([-+][0-9A-Za-z.+-]*)?$/

const parseKubeVersion = (text: string, where: string): KubeVersion | undefined => {
  const trimmed = text.trim()
  if (trimmed === '') return undefined
  const match = KUBE_VERSION.exec(trimmed)
  if (!match) throw new ConfigError(where, text, 'a Kubernetes version like 1.29, v1.33.1 or 1.30.2-eks-1, or empty')
  return { major: Number(match[1]), minor: Number(match[2]) }
}

/** The capture settings and injector settings a pod annotation may name, by flag. */
export const annotatableFlags = (): ReadonlyMap<string, 'capture' | 'inject'> =>
  new Map([
    ...Object.values(OPTIONS).map(spec => [spec.flag, 'capture'] as const),
    ...Object.entries(INJECT_OPTIONS)
      .filter(([key]) => !OPERATOR_ONLY.has(key as keyof InjectSettings))
      .map(([, spec]) => [spec.flag, 'inject'] as const),
  ])

// What only the operator decides: what runs with NET_ADMIN (the init image), how a pod is captured at all (the
// mode, which must match the nodes), the allow-list itself, and whether unsafe apps are refused.
const OPERATOR_ONLY: ReadonlySet<keyof InjectSettings> = new Set([
  'image',
  'pullPolicy',
  'mode',
  'kubeVersion',
  'appCapabilities',
  'annotations',
  'helperUid',
])

// Per pod, what Istio's pod annotations let a pod's author choose too (its proxy, its layout, which of its own
// ports and destinations are captured), and nothing that names a file or decides how the rules are programmed.
const DEFAULT_ANNOTATIONS = [
  'proxy-image',
  'proxy-command',
  'proxy-args',
  'proxy-probe',
  'inject-layout',
  'inbound-ports',
  'inbound-exclude-ports',
  'outbound-exclude-ports',
  'outbound-include-cidrs',
  'outbound-exclude-cidrs',
]

const parseAnnotationList = (text: string, where: string): readonly string[] => {
  const names = text.trim() === '' ? [] : text.split(',').map(name => name.trim())
  const allowed = annotatableFlags()
  const accepted = `comma-separated flag names of settings a pod annotation may set (capture settings, or ${[...allowed]
    .filter(([, kind]) => kind === 'inject')
    .map(([flag]) => flag)
    .join(', ')}), or empty for none`
  for (const name of names) if (!allowed.has(name)) throw new ConfigError(where, text, `${accepted}; ${JSON.stringify(name)} is not one`)
  return [...new Set(names)]
}

export const INJECT_OPTIONS: OptionTable<InjectSettings> = {
  image: {
    env: 'ISTIO_INJECT_IMAGE',
    flag: 'inject-image',
    default: `ghcr.io/sidecar-redirect/sidecar-redirect:${VERSION}`,
    help: "inject: this project's image, for the init (or validate) container and, unless another is named, the proxy",
    parse: parseImage,
  },
  pullPolicy: {
    env: 'ISTIO_INJECT_PULL_POLICY',
    flag: 'inject-pull-policy',
    default: 'IfNotPresent',
    help: "inject: the imagePullPolicy of the containers of this project's image",
    parse: (t, w) => parseChoice(t, w, ['Always', 'IfNotPresent', 'Never']),
  },
  mode: {
    env: 'ISTIO_INJECT_MODE',
    flag: 'inject-mode',
    default: 'init',
    help: 'inject: init (an init container with NET_ADMIN programs the rules) or cni (the node plugin does; the pod gets validate and no capability)',
    parse: (t, w) => parseChoice(t, w, ['init', 'cni']),
  },
  layout: {
    env: 'ISTIO_INJECT_LAYOUT',
    flag: 'inject-layout',
    default: 'auto',
    help: 'inject: native (the proxy an init container with restartPolicy Always), classic (an ordinary container first, the app held until it listens), or auto: native from Kubernetes 1.29',
    parse: (t, w) => parseChoice(t, w, ['auto', 'native', 'classic']),
  },
  kubeVersion: {
    env: 'ISTIO_INJECT_KUBE_VERSION',
    flag: 'kube-version',
    default: '',
    help: 'inject: the Kubernetes version the pods run on, for layout auto; empty means a supported one (1.29 or later)',
    parse: parseKubeVersion,
  },
  proxyImage: {
    env: 'ISTIO_INJECT_PROXY_IMAGE',
    flag: 'proxy-image',
    default: '',
    help: "inject: your proxy's image (Envoy, or anything that reads SO_ORIGINAL_DST); empty means this project's image and its stand-in relay",
    parse: (t, w) => (t.trim() === '' ? undefined : parseImage(t, w)),
  },
  proxyCommand: {
    env: 'ISTIO_INJECT_PROXY_COMMAND',
    flag: 'proxy-command',
    default: '',
    help: "inject: the proxy container's command, a JSON list; empty means the image's own entrypoint",
    parse: parseCommand,
  },
  proxyArgs: {
    env: 'ISTIO_INJECT_PROXY_ARGS',
    flag: 'proxy-args',
    default: '',
    help: "inject: the proxy container's args, a JSON list; empty means the image's own",
    parse: parseCommand,
  },
  proxyAgent: {
    env: 'ISTIO_INJECT_PROXY_AGENT',
    flag: 'proxy-agent',
    default: 'auto',
    help: "inject: whether the proxy's image holds this project's agent (/app/entrypoint), which methods mark and cgroup need: auto (only this project's image does), true or false",
    parse: (t, w) => parseChoice(t, w, ['auto', 'true', 'false']),
  },
  proxyProbe: {
    env: 'ISTIO_INJECT_PROXY_PROBE',
    flag: 'proxy-probe',
    default: 'tcp',
    help: "inject: the proxy's startup and readiness probe: tcp (a connection to the proxy port on the pod's address), none, or a JSON Kubernetes Probe",
    parse: parseProbe,
  },
  proxyReadOnlyRoot: {
    env: 'ISTIO_INJECT_PROXY_READ_ONLY_ROOT',
    flag: 'proxy-read-only-root',
    default: 'true',
    help: "inject: give the proxy container a read-only root filesystem (false for a proxy that writes into its image's directories)",
    parse: (t, w) => parseChoice(t, w, ['true', 'false']) === 'true',
  },
  resources: {
    env: 'ISTIO_INJECT_RESOURCES',
    flag: 'inject-resources',
    default: '{"requests":{"cpu":"10m","memory":"32Mi"},"limits":{"memory":"128Mi"}}',
    help: "inject: the resources of this project's containers (init or validate, the classic hold), a JSON ResourceRequirements; empty for none",
    parse: parseResources,
  },
  proxyResources: {
    env: 'ISTIO_INJECT_PROXY_RESOURCES',
    flag: 'proxy-resources',
    default: '',
    help: "inject: the proxy container's resources, a JSON ResourceRequirements; empty for none",
    parse: parseResources,
  },
  hold: {
    env: 'ISTIO_INJECT_HOLD',
    flag: 'inject-hold',
    default: 'true',
    help: 'inject, classic layout: hold the app containers until the proxy accepts connections (true or false)',
    parse: (t, w) => parseChoice(t, w, ['true', 'false']) === 'true',
  },
  appCapabilities: {
    env: 'ISTIO_INJECT_APP_CAPABILITIES',
    flag: 'app-capabilities',
    default: 'warn',
    help: 'inject: what to do with an app container that keeps NET_RAW or has NET_ADMIN (it can bypass or undo capture): warn or refuse',
    parse: (t, w) => parseChoice(t, w, ['warn', 'refuse']),
  },
  helperUid: {
    env: 'ISTIO_INJECT_HELPER_UID',
    flag: 'helper-uid',
    default: '65532',
    help: "inject: the UID and GID of this project's unprivileged containers (validate in mode cni, the classic hold): an identity the rules capture, not the proxy's",
    parse: (t, w) => parseInteger(t, w, 1, 0xfffffffe, 'a numeric ID from 1 to 4294967294'),
  },
  annotations: {
    env: 'ISTIO_INJECT_ANNOTATIONS',
    flag: 'inject-annotations',
    default: DEFAULT_ANNOTATIONS.join(','),
    help: `inject: the settings a pod's annotations may set for that pod (${CAPTURE_ANNOTATION_PREFIX}<flag> or ${INJECT_ANNOTATION_PREFIX}<flag>), comma-separated flag names; empty for none`,
    parse: parseAnnotationList,
  },
}

const parsePath = (t: string, w: string): string => {
  if (!t.startsWith('/') || t.includes('\0')) throw new ConfigError(w, t, 'an absolute path')
  return t
}

export const WEBHOOK_OPTIONS: OptionTable<WebhookSettings> = {
  port: {
    env: 'ISTIO_WEBHOOK_PORT',
    flag: 'webhook-port',
    default: '8443',
    help: 'webhook: the HTTPS port it listens on',
    parse: (t, w) => parseInteger(t, w, 1, 65535, 'a TCP port from 1 to 65535'),
  },
  certFile: {
    env: 'ISTIO_WEBHOOK_CERT',
    flag: 'webhook-cert',
    default: '/etc/sidecar-redirect/tls/tls.crt',
    help: 'webhook: its TLS certificate chain (PEM), read again whenever it changes',
    parse: parsePath,
  },
  keyFile: {
    env: 'ISTIO_WEBHOOK_KEY',
    flag: 'webhook-key',
    default: '/etc/sidecar-redirect/tls/tls.key',
    help: "webhook: the certificate's private key (PEM), read again whenever it changes",
    parse: parsePath,
  },
  maxBytes: {
    env: 'ISTIO_WEBHOOK_MAX_BYTES',
    flag: 'webhook-max-bytes',
    // The API server refuses requests over 3 MiB itself; a pod's AdmissionReview is far smaller.
    default: '3145728',
    help: 'webhook: the largest request body it reads; larger ones are refused with 413',
    parse: (t, w) => parseInteger(t, w, 1024, 64 * 1024 * 1024, 'a byte count from 1024 to 67108864'),
  },
  requestSeconds: {
    env: 'ISTIO_WEBHOOK_REQUEST_SECONDS',
    flag: 'webhook-request-seconds',
    // The API server waits at most 30 s for a webhook (the chart sets 10 s): an answer later than that is wasted.
    default: '10',
    help: 'webhook: how long one request may take to arrive and be answered before the connection is closed',
    parse: (t, w) => parseInteger(t, w, 1, 30, 'whole seconds from 1 to 30'),
  },
  certCheckSeconds: {
    env: 'ISTIO_WEBHOOK_CERT_CHECK_SECONDS',
    flag: 'webhook-cert-check-seconds',
    default: '10',
    help: 'webhook: how often it reads the certificate files for a change, besides change notifications',
    parse: (t, w) => parseInteger(t, w, 1, 3600, 'whole seconds from 1 to 3600'),
  },
}
