// Workloads for the injection tests: every kind with a pod template, around one pod spec that has a bit of
// everything a user writes (an init container, a volume, annotations, a pod security context), and Kubernetes' own
// schemas (kubernetes-models) to check what injection makes of them.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { CronJob, Job } from 'kubernetes-models/batch/v1'
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from 'kubernetes-models/apps/v1'
import { Pod, PodTemplate, ReplicationController } from 'kubernetes-models/v1'

export type Obj = Record<string, any>

/** A pod spec as a user writes it. */
export const podSpec = (): Obj => ({
  securityContext: { runAsNonRoot: true, fsGroup: 2000 },
  initContainers: [
    {
      name: 'migrate',
      image: 'registry.example/migrate:1',
      command: ['/migrate'],
      securityContext: { runAsUser: 1000, capabilities: { drop: ['ALL'] } },
    },
  ],
  containers: [
    {
      name: 'app',
      image: 'registry.example/web:2',
      ports: [{ containerPort: 8080, name: 'http' }],
      securityContext: { runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      volumeMounts: [{ name: 'data', mountPath: '/data' }],
    },
  ],
  volumes: [{ name: 'data', emptyDir: {} }],
})

const template = (spec: Obj): Obj => ({ metadata: { labels: { app: 'web' }, annotations: { 'team.example/owner': 'shop' } }, spec })

const meta = { name: 'web', namespace: 'shop', labels: { app: 'web' } }
const selector = { matchLabels: { app: 'web' } }

type Kind = { make: (spec: Obj) => Obj; model: new (o: never) => { validate(): void } }

/** Every kind injection reads a pod template from, with its schema class from kubernetes-models; each make is a fresh object. */
export const KINDS: Record<string, Kind> = {
  Pod: { make: spec => ({ apiVersion: 'v1', kind: 'Pod', metadata: { ...meta, annotations: { 'team.example/owner': 'shop' } }, spec }), model: Pod },
  Deployment: {
    make: spec => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta, spec: { replicas: 2, selector, template: template(spec) } }),
    model: Deployment,
  },
  StatefulSet: {
    make: spec => ({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta, spec: { serviceName: 'web', selector, template: template(spec) } }),
    model: StatefulSet,
  },
  DaemonSet: {
    make: spec => ({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: meta, spec: { selector, template: template(spec) } }),
    model: DaemonSet,
  },
  ReplicaSet: {
    make: spec => ({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: meta, spec: { selector, template: template(spec) } }),
    model: ReplicaSet,
  },
  ReplicationController: {
    make: spec => ({ apiVersion: 'v1', kind: 'ReplicationController', metadata: meta, spec: { selector: { app: 'web' }, template: template(spec) } }),
    model: ReplicationController,
  },
  Job: {
    make: spec => ({ apiVersion: 'batch/v1', kind: 'Job', metadata: meta, spec: { template: template({ ...spec, restartPolicy: 'Never' }) } }),
    model: Job,
  },
  CronJob: {
    make: spec => ({
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: meta,
      spec: { schedule: '*/5 * * * *', jobTemplate: { spec: { template: template({ ...spec, restartPolicy: 'OnFailure' }) } } },
    }),
    model: CronJob,
  },
  PodTemplate: { make: spec => ({ apiVersion: 'v1', kind: 'PodTemplate', metadata: meta, template: template(spec) }), model: PodTemplate },
}

for (const kind of Object.values(KINDS)) {
  const make = kind.make
  kind.make = spec => structuredClone(make(spec))
}

/** The pod template inside an object of one of KINDS. */
export const templateOf = (object: Obj): Obj =>
  object['kind'] === 'Pod'
    ? object
    : object['kind'] === 'CronJob'
      ? object['spec'].jobTemplate.spec.template
      : object['kind'] === 'PodTemplate'
        ? object['template']
        : object['spec'].template

// kubernetes-models' schemas are compiled validators that accept unknown keys; the keys they know are the ones
// their code reads (`data.<key>`), which is how this takes each type's field names from Kubernetes' own schema.
const SCHEMAS = `${createRequire(import.meta.url)
  .resolve('kubernetes-models/package.json')
  .replace(/package\.json$/, '')}_schemas`
const keysOf = (type: string): Set<string> =>
  new Set(
    [...readFileSync(`${SCHEMAS}/IoK8sApiCoreV1${type}.mjs`, 'utf8').matchAll(/data\.([A-Za-z]+)/g)].map(m => m[1]!).filter(k => k !== 'length'),
  )

// Which schema type a field of a type holds, as far as injection writes them.
const NESTED: Record<string, Record<string, string>> = {
  Container: {
    securityContext: 'SecurityContext',
    startupProbe: 'Probe',
    readinessProbe: 'Probe',
    livenessProbe: 'Probe',
    lifecycle: 'Lifecycle',
    env: 'EnvVar',
    volumeMounts: 'VolumeMount',
    resources: 'ResourceRequirements',
  },
  SecurityContext: { capabilities: 'Capabilities', seccompProfile: 'SeccompProfile' },
  Probe: { tcpSocket: 'TCPSocketAction', exec: 'ExecAction' },
  Lifecycle: { postStart: 'LifecycleHandler', preStop: 'LifecycleHandler' },
  LifecycleHandler: { exec: 'ExecAction' },
  Volume: { hostPath: 'HostPathVolumeSource' },
}

/** Field names in `value` that Kubernetes' schema for `type` does not have, as paths. */
export const unknownKeys = (type: string, value: unknown, at = type): string[] => {
  if (Array.isArray(value)) return value.flatMap((item, i) => unknownKeys(type, item, `${at}[${i}]`))
  if (value === null || typeof value !== 'object') return []
  const known = keysOf(type)
  return Object.entries(value).flatMap(([key, item]) => {
    if (!known.has(key)) return [`${at}.${key}`]
    const nested = NESTED[type]?.[key]
    return nested ? unknownKeys(nested, item, `${at}.${key}`) : []
  })
}
