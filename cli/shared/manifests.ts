/**
 * Workload manifests → the Pod the API server would send to the webhook, and the webhook's patch applied back.
 * Pure.
 * @module
 */
import type { AdmissionRequest } from '../../function/admission.ts'
import type { AddOperation } from '../../function/mutate-pod.ts'

type Json = Record<string, unknown>

/** Where each kind keeps its pod: `''` is the object itself (a Pod), else the pod template's JSON Pointer. */
const POD_TEMPLATE_PATHS: Readonly<Record<string, string>> = {
  Pod: '',
  Deployment: '/spec/template',
  StatefulSet: '/spec/template',
  DaemonSet: '/spec/template',
  ReplicaSet: '/spec/template',
  ReplicationController: '/spec/template',
  Job: '/spec/template',
  CronJob: '/spec/jobTemplate/spec/template',
  PodTemplate: '/template',
}

export interface Workload {
  readonly kind: string
  readonly name: string
  readonly namespace: string
  /** JSON Pointer of the pod inside the manifest (`''` for a bare Pod). */
  readonly podPath: string
  readonly pod: Json
}

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function unescapeToken(token: string): string {
  return token.replaceAll('~1', '/').replaceAll('~0', '~')
}

function at(document: unknown, pointer: string): unknown {
  let node = document
  for (const token of pointer.split('/').slice(1)) {
    if (Array.isArray(node)) node = node[Number(token)]
    else node = isObject(node) ? node[unescapeToken(token)] : undefined
  }
  return node
}

/** The workload as `Kind ns/name`. */
export function describe(workload: Workload): string {
  return `${workload.kind} ${workload.namespace}/${workload.name || '(unnamed)'}`
}

/**
 * The pod of a workload manifest, or undefined for kinds without one. A template becomes a Pod the way a
 * controller creates it: the template's metadata and spec, no namespace in the object (the request carries it).
 */
export function podOf(manifest: unknown, fallbackNamespace: string): Workload | undefined {
  if (!isObject(manifest) || typeof manifest['kind'] !== 'string') return undefined
  const podPath = POD_TEMPLATE_PATHS[manifest['kind']]
  if (podPath === undefined) return undefined
  const metadata = isObject(manifest['metadata']) ? manifest['metadata'] : {}
  const namespace =
    typeof metadata['namespace'] === 'string' && metadata['namespace'] !== ''
      ? metadata['namespace']
      : fallbackNamespace
  const name = String(metadata['name'] ?? metadata['generateName'] ?? '')
  const found = podPath === '' ? manifest : at(manifest, podPath)
  const template = isObject(found) ? found : {}
  const pod =
    podPath === ''
      ? structuredClone(manifest)
      : { apiVersion: 'v1', kind: 'Pod', ...structuredClone(template) }
  return { kind: manifest['kind'], name, namespace, podPath, pod }
}

/** The request the API server would send for creating this pod. */
export function podCreateRequest(
  workload: Pick<Workload, 'namespace' | 'pod'>,
  uid: string,
): AdmissionRequest {
  const metadata = isObject(workload.pod['metadata']) ? workload.pod['metadata'] : {}
  const podName = typeof metadata['name'] === 'string' ? { name: metadata['name'] } : {}
  return {
    uid,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    namespace: workload.namespace,
    ...podName,
    object: workload.pod,
  }
}

/** Moves pod-relative patch paths under the manifest's pod template. */
export function rebase(patch: readonly AddOperation[], podPath: string): AddOperation[] {
  return patch.map((op) => ({ ...op, path: `${podPath}${op.path}` }))
}

function addOne(document: unknown, op: AddOperation): void {
  const cut = op.path.lastIndexOf('/')
  if (cut < 0) throw new Error(`cannot add at the document root (${op.path})`)
  const parent = at(document, op.path.slice(0, cut))
  const last = unescapeToken(op.path.slice(cut + 1))
  const value = structuredClone(op.value)
  if (isObject(parent)) {
    parent[last] = value
    return
  }
  if (!Array.isArray(parent)) throw new Error(`path ${op.path}: parent does not exist`)
  const index = last === '-' ? parent.length : Number(last)
  if (!Number.isInteger(index) || index < 0 || index > parent.length) {
    throw new Error(`bad array index in ${op.path}`)
  }
  parent.splice(index, 0, value)
}

/** Applies RFC 6902 `add` operations (the only kind the webhook emits) to a copy of `document`. */
export function applyAddPatch<T>(document: T, patch: readonly AddOperation[]): T {
  const copy = structuredClone(document)
  for (const op of patch) addOne(copy, op)
  return copy
}
