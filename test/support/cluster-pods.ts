/**
 * Pods and ServiceAccounts on the real control plane, the way a user creates them (kubectl), and stored pods made
 * comparable: what the admission tests against the real kube-apiserver share (test/cluster/).
 * @module
 */
import type { Operation } from 'fast-json-patch'
import type { Command, ControlPlane } from './control-plane.ts'

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects as JSON
export type Json = Record<string, any>

/** One file of test/fixtures/cases: a ServiceAccount, a pod, optional webhook env, and the expected answer. */
export interface FixtureCase {
  description: string
  serviceAccount?: Json
  pod: Json
  env?: Record<string, string>
  expected: {
    allowed: boolean
    patch: Operation[]
    warnings: string[]
    message?: string
  }
}

/** A ServiceAccount and a pod to create with it (namespaces are set when created). */
export interface PodCase {
  readonly serviceAccount?: Json
  readonly pod: Json
}

/**
 * The distinct webhook settings (`env`) the mutation cases use, keyed by their JSON: one webhook (or policy) per
 * entry serves every case with those settings.
 */
export function caseConfigs(cases: readonly FixtureCase[]): Map<string, Record<string, string>> {
  return new Map(cases.map((c) => [JSON.stringify(c.env ?? {}), c.env ?? {}]))
}

/** What `kubectl create` did: exit code, output, the warnings it printed, and the stored name. */
export interface CaseOutcome extends Command {
  readonly warnings: string[]
  readonly name: string
}

const API_ACCESS = /^kube-api-access-/

/** Drops keys named `key` anywhere in `value` (in place). */
function dropKey(value: unknown, key: string): void {
  if (Array.isArray(value)) for (const item of value) dropKey(item, key)
  else if (typeof value === 'object' && value !== null) {
    delete (value as Json)[key]
    for (const item of Object.values(value)) dropKey(item, key)
  }
}

/**
 * A mutation case's ServiceAccount and pod as a user would write them: without the `kube-api-access-*` volume and
 * mounts (the API server adds its own), or with `automountServiceAccountToken: false` when the case pod has no such
 * volume (the only way a pod reaches a webhook without one), and without unknown fields (the API server drops them
 * while decoding).
 */
export function forCluster(fixture: { serviceAccount?: Json; pod: Json }): PodCase {
  const pod = structuredClone(fixture.pod)
  dropKey(pod, 'futureField')
  const spec = pod['spec'] as Json
  // A pod reaches a webhook without the API server's token volume only when it turns automounting off.
  if (!(spec['volumes'] ?? []).some((v: Json) => API_ACCESS.test(v['name'])))
    spec['automountServiceAccountToken'] = false
  spec['volumes'] = (spec['volumes'] ?? []).filter((v: Json) => !API_ACCESS.test(v['name']))
  if (spec['volumes'].length === 0) delete spec['volumes']
  for (const group of ['containers', 'initContainers']) {
    for (const container of spec[group] ?? []) {
      if (container['volumeMounts'] === undefined) continue
      container['volumeMounts'] = container['volumeMounts'].filter(
        (m: Json) => !API_ACCESS.test(m['name']),
      )
      if (container['volumeMounts'].length === 0) delete container['volumeMounts']
    }
  }
  return fixture.serviceAccount === undefined
    ? { pod }
    : { serviceAccount: structuredClone(fixture.serviceAccount), pod }
}

const inNamespace = (object: Json, namespace: string): Json => ({
  ...object,
  metadata: { ...object['metadata'], namespace },
})

/** kubectl's `Warning: …` lines, in order. */
export function warningsOf(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('Warning: '))
    .map((line) => line.slice('Warning: '.length))
}

/** Applies the case's ServiceAccount (if any) in `namespace`, then creates its pod with `kubectl create`. */
export async function createPod(
  cp: ControlPlane,
  namespace: string,
  podCase: PodCase,
  extraArgs: readonly string[] = [],
): Promise<CaseOutcome> {
  if (podCase.serviceAccount !== undefined)
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify(inNamespace(podCase.serviceAccount, namespace)),
    })
  const result = await cp.kubectl(['create', '-o', 'json', ...extraArgs, '-f', '-'], {
    input: JSON.stringify(inNamespace(podCase.pod, namespace)),
  })
  const name = result.code === 0 ? String(JSON.parse(result.stdout).metadata.name) : ''
  return { ...result, warnings: warningsOf(result.stderr), name }
}

export async function storedPod(cp: ControlPlane, namespace: string, name: string): Promise<Json> {
  return cp.getJson(['pod', name, '-n', namespace])
}

/**
 * A stored pod with only what differs between any two stored objects normalised: uid, resourceVersion, timestamps,
 * managedFields, the namespace, a generated name, and the random suffix of `kube-api-access-*`.
 */
export function normalise(pod: Json): Json {
  const copy = structuredClone(pod)
  const metadata = copy['metadata'] as Json
  for (const key of ['uid', 'resourceVersion', 'creationTimestamp', 'managedFields', 'namespace'])
    delete metadata[key]
  if (metadata['generateName'] !== undefined) delete metadata['name']
  else metadata['name'] = String(metadata['name']).replace(/-expected$/, '')
  return JSON.parse(
    JSON.stringify(copy).replace(/kube-api-access-[a-z0-9]{5}/g, 'kube-api-access-*'),
  ) as Json
}
