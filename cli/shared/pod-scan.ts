/**
 * The pod scan of `audit`, also run by doctor's missing-identity check: every stored pod the webhook would still
 * change today, found with the webhook's own decision (`reviewPod`, which runs `planPodMutation`) applied to the
 * stored pod and its ServiceAccount. A pod is `missing` its identity when that decision is a non-empty patch. Pods
 * the MutatingWebhookConfiguration never sends to the webhook (its namespaceSelector/objectSelector), mirror pods
 * and finished pods are not audited.
 * @module
 */
import { type ServiceAccountInfo, serviceAccountSchema } from '../../function/kube-objects.ts'
import { type AddOperation, containersWithOtherRole } from '../../function/mutate-pod.ts'
import { ANNOTATIONS, ENV, TOKEN_VOLUME } from '../../function/names.ts'
import {
  type Decision,
  type Lookup,
  type ReviewSettings,
  reviewPod,
} from '../../function/review-pod.ts'
import { toServiceAccountInfo } from '../../function/service-accounts.ts'
import type { KubeClient } from './kube.ts'
import { statusMessage } from './kube.ts'
import { ClusterReadError, forEachListed } from './kube-list.ts'
import { isObject, podCreateRequest } from './manifests.ts'
import { selects, selectsNamespace } from './selector.ts'
import { type LabelSelector, MWC_PATH, ourWebhook } from './webhook-configuration.ts'

export type Problem = 'missing' | 'role-differs' | 'invalid-role' | 'volume-conflict'

export interface OwnerRef {
  readonly kind: string
  readonly name: string
  readonly apiVersion?: string
}

/** One pod the webhook would still change (or could not change). */
export interface Finding {
  readonly namespace: string
  readonly name: string
  readonly uid: string
  readonly serviceAccount: string
  readonly problem: Problem
  /** What is missing, or why the webhook does not mutate it. */
  readonly detail: string
  /** The pod's controller (its ownerReference with controller: true). */
  readonly controller: OwnerRef | null
  readonly labels: Readonly<Record<string, string>>
}

export interface SkippedPod {
  readonly namespace: string
  readonly name: string
  readonly reason: string
}

export interface ScanCounts {
  /** Pods listed. */
  scanned: number
  finished: number
  mirror: number
  excludedNamespace: number
  excludedLabels: number
  /** Audited and fine (already mutated, not annotated, ServiceAccount gone). */
  ok: number
}

export interface ScanResult {
  readonly findings: Finding[]
  readonly skipped: SkippedPod[]
  readonly counts: ScanCounts
  /** The run's ServiceAccounts (heal re-checks pods with them). */
  readonly serviceAccounts: ServiceAccountCache
  /** Set when the listing could not be completed: the findings are those found so far. */
  failure?: string
}

/** Items per LIST page when the caller names none (`audit --chunk-size`). */
export const DEFAULT_CHUNK_SIZE = 500

export interface ScanOptions {
  readonly client: KubeClient
  /** One namespace, or undefined for all. */
  readonly namespace: string | undefined
  readonly configurationName: string
  readonly chunkSize: number
  readonly settings: ReviewSettings
  /** Notes for stderr (a restarted listing, exclusions not found, …). */
  readonly note: (line: string) => void
  /** The webhook's selectors when the caller has read the configuration already (doctor); else read here. */
  readonly selectors?: WebhookSelectors
  /** How ServiceAccounts are read (default `list`; see loadServiceAccounts). */
  readonly serviceAccountReads?: 'list' | 'get'
}

/** What the classification of one stored pod comes to. */
export type Classification =
  | { readonly kind: 'ok' }
  | { readonly kind: 'skipped'; readonly reason: string }
  | {
      readonly kind: 'finding'
      readonly problem: Problem
      readonly detail: string
      readonly serviceAccount: string
    }

/** The ServiceAccounts of a run: each read once (a LIST, or one GET when a pod names one the LIST did not have). */
export interface ServiceAccountCache {
  lookup(namespace: string, name: string): Lookup | undefined
  fetch(namespace: string, name: string): Promise<Lookup>
}

function describePatch(pod: PodShape, patch: readonly AddOperation[]): string {
  const parts: string[] = []
  const perContainer = new Map<string, string[]>()
  for (const op of patch) {
    const match = /^\/spec\/(containers|initContainers)\/(\d+)\/(env|volumeMounts)/.exec(op.path)
    if (match === null) {
      parts.push(`token volume ${TOKEN_VOLUME.name}`)
      continue
    }
    const [, field = '', index = '', what] = match
    const container = pod.spec?.[field as 'containers']?.[Number(index)]?.name ?? `#${index}`
    const items = perContainer.get(container) ?? []
    const values = Array.isArray(op.value) ? op.value : [op.value]
    if (what === 'env') items.push(...values.map((v) => String((v as { name?: unknown }).name)))
    else items.push('token mount')
    perContainer.set(container, items)
  }
  for (const [container, items] of perContainer) {
    parts.push(`container ${container}: ${items.join(', ')}`)
  }
  return parts.join('; ')
}

interface PodShape {
  metadata?: {
    name?: string
    namespace?: string
    uid?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
    ownerReferences?: { kind?: string; name?: string; controller?: boolean; apiVersion?: string }[]
  }
  spec?: {
    serviceAccountName?: string
    containers?: { name?: string }[]
    initContainers?: { name?: string }[]
  }
  status?: { phase?: string }
}

const NEVER = new AbortController().signal

/**
 * Classifies one stored pod with the webhook's decision (`reviewPod`): a non-empty patch is `missing`; the
 * webhook's `invalid-role` and `volume-conflict` outcomes are reported as such; an already-mutated pod whose
 * containers keep another AWS_ROLE_ARN than the ServiceAccount's is `role-differs`.
 */
export function classifyPod(
  pod: unknown,
  namespace: string,
  serviceAccounts: ServiceAccountCache,
  settings: ReviewSettings,
): Classification | Promise<Classification> {
  const request = podCreateRequest(
    { namespace, pod: pod as Record<string, unknown> },
    'irsa-webhook-audit',
  )
  const source = {
    cached: (ns: string, name: string) => serviceAccounts.lookup(ns, name),
    get: (ns: string, name: string) => serviceAccounts.fetch(ns, name),
  }
  const decision = reviewPod(request, { serviceAccounts: source, settings, signal: () => NEVER })
  // Synchronous when the ServiceAccount is at hand (the LIST had it): no promise per pod.
  return decision instanceof Promise
    ? decision.then((d) => interpret(d, pod, namespace, serviceAccounts))
    : interpret(decision, pod, namespace, serviceAccounts)
}

function interpret(
  decision: Decision,
  pod: unknown,
  namespace: string,
  serviceAccounts: ServiceAccountCache,
): Classification {
  const serviceAccount = (pod as PodShape).spec?.serviceAccountName || 'default'
  if (decision.kind === 'error') return { kind: 'skipped', reason: decision.message }
  const { outcome, answer } = decision
  const finding = (problem: Problem, detail: string): Classification => ({
    kind: 'finding',
    problem,
    detail,
    serviceAccount,
  })
  if (outcome === 'mutated') {
    return finding('missing', describePatch(pod as PodShape, answer.patch ?? []))
  }
  if (outcome === 'invalid-role') {
    return finding('invalid-role', answer.message ?? answer.warnings?.join('; ') ?? '')
  }
  if (outcome === 'volume-conflict')
    return finding('volume-conflict', answer.warnings?.at(-1) ?? '')
  if (outcome === 'already-mutated') {
    const role = roleOf(serviceAccounts.lookup(namespace, serviceAccount))
    const others = role === undefined ? [] : containersWithOtherRole(pod as never, role)
    if (others.length > 0) {
      return finding(
        'role-differs',
        `${others.map((c) => `container ${c}`).join(', ')}: ${ENV.roleArn} is not the ServiceAccount's ${role}`,
      )
    }
  }
  return { kind: 'ok' }
}

function roleOf(lookup: Lookup | undefined): string | undefined {
  return lookup?.kind === 'found' ? lookup.serviceAccount.annotations[ANNOTATIONS.role] : undefined
}

function toLookup(item: unknown, namespace: string): Lookup {
  const parsed = serviceAccountSchema.safeParse({ kind: 'ServiceAccount', ...(item as object) })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue?.path.join('.') ?? ''
    return {
      kind: 'failed',
      reason: `ServiceAccount has an unexpected shape (${where}: ${issue?.message ?? 'invalid'})`,
    }
  }
  const serviceAccount: ServiceAccountInfo = toServiceAccountInfo(parsed.data, namespace)
  return { kind: 'found', serviceAccount }
}

/** A per-run cache: each ServiceAccount a pod names and the LIST did not have is fetched (GET) once. */
function createServiceAccountCache(client: KubeClient) {
  const byNamespace = new Map<string, Map<string, Lookup>>()
  const remember = (ns: string, name: string, lookup: Lookup) => {
    let names = byNamespace.get(ns)
    if (names === undefined) {
      names = new Map()
      byNamespace.set(ns, names)
    }
    names.set(name, lookup)
  }
  const cache: ServiceAccountCache = {
    lookup: (ns, name) => byNamespace.get(ns)?.get(name),
    async fetch(ns, name) {
      const lookup = await getServiceAccount(client, ns, name)
      if (lookup.kind !== 'failed') remember(ns, name, lookup)
      return lookup
    },
  }
  return { cache, remember }
}

/**
 * Reads every ServiceAccount in scope with one paginated LIST (cluster-wide, or the namespace's). With `reads:
 * 'get'` nothing is listed and each ServiceAccount is fetched when a pod first names it: the alternative the
 * benchmark measures (npm run bench:audit).
 */
async function loadServiceAccounts(
  options: Pick<ScanOptions, 'client' | 'namespace' | 'chunkSize' | 'note'>,
  reads: 'list' | 'get' = 'list',
): Promise<ServiceAccountCache> {
  const { client, namespace } = options
  const { cache, remember } = createServiceAccountCache(client)
  if (reads === 'get') return cache
  const path =
    namespace === undefined
      ? '/api/v1/serviceaccounts'
      : `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`
  const target = { path, resource: 'serviceaccounts', namespace }
  await forEachListed(
    client,
    target,
    options.chunkSize,
    (item) => {
      const metadata = (item as PodShape | null)?.metadata
      const ns = metadata?.namespace ?? namespace ?? ''
      remember(ns, String(metadata?.name ?? ''), toLookup(item, ns))
    },
    (reason) => options.note(`listing serviceaccounts failed (${reason}); restarting it once`),
  )
  return cache
}

async function getServiceAccount(client: KubeClient, ns: string, name: string): Promise<Lookup> {
  try {
    const response = await client.get(
      `/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts/${encodeURIComponent(name)}`,
    )
    if (response.status === 404) return { kind: 'not-found' }
    if (response.status !== 200) {
      return { kind: 'failed', reason: `GET ServiceAccount: ${statusMessage(response)}` }
    }
    return toLookup(response.body, ns)
  } catch (error) {
    return { kind: 'failed', reason: error instanceof Error ? error.message : String(error) }
  }
}

interface WebhookSelectors {
  readonly namespaceSelector?: LabelSelector
  readonly objectSelector?: LabelSelector
}

/** The selectors of our webhook entry; none when the configuration does not exist. */
async function loadSelectors(
  client: KubeClient,
  name: string,
  note: (line: string) => void,
): Promise<WebhookSelectors> {
  const path = `${MWC_PATH}/${encodeURIComponent(name)}`
  let response: Awaited<ReturnType<KubeClient['get']>>
  try {
    response = await client.get(path)
  } catch (error) {
    throw new ClusterReadError(`GET ${path}: ${error instanceof Error ? error.message : error}`)
  }
  if (response.status === 404) {
    note(
      `MutatingWebhookConfiguration ${name} not found: no namespace or label exclusions applied (--configuration NAME)`,
    )
    return {}
  }
  if (response.status === 403) {
    throw new ClusterReadError(
      `cannot get mutatingwebhookconfigurations ${name}: forbidden (${statusMessage(response)}); grant the RBAC verb "get" on "mutatingwebhookconfigurations.admissionregistration.k8s.io"`,
    )
  }
  if (response.status !== 200) throw new ClusterReadError(`GET ${path}: ${statusMessage(response)}`)
  const webhook = ourWebhook(response.body)
  if ((webhook?.matchConditions ?? []).length > 0) {
    note(`webhook ${webhook?.name}: matchConditions are not evaluated by the audit`)
  }
  return {
    ...(webhook?.namespaceSelector ? { namespaceSelector: webhook.namespaceSelector } : {}),
    ...(webhook?.objectSelector ? { objectSelector: webhook.objectSelector } : {}),
  }
}

/** Namespace name → labels, for the namespaceSelector (read only when there is one). */
async function loadNamespaceLabels(
  options: ScanOptions,
): Promise<Map<string, Record<string, string>>> {
  const labels = new Map<string, Record<string, string>>()
  const target = { path: '/api/v1/namespaces', resource: 'namespaces', namespace: undefined }
  await forEachListed(options.client, target, options.chunkSize, (item) => {
    const metadata = (item as PodShape | null)?.metadata
    if (typeof metadata?.name === 'string') labels.set(metadata.name, metadata.labels ?? {})
  })
  return labels
}

/** An object's controller: its ownerReference with controller: true, else its first one; null when it has none. */
export function controllerOf(object: Pick<PodShape, 'metadata'> | undefined): OwnerRef | null {
  const metadata = object?.metadata
  const refs = Array.isArray(metadata?.ownerReferences) ? metadata.ownerReferences : []
  const ref = refs.find((r) => r.controller === true) ?? refs[0]
  if (typeof ref?.kind !== 'string' || typeof ref.name !== 'string') return null
  return { kind: ref.kind, name: ref.name }
}

interface Scope {
  readonly selectors: WebhookSelectors
  readonly namespaces: Map<string, Record<string, string>> | undefined
  readonly serviceAccounts: ServiceAccountCache
}

/** Why the pod is not audited, or undefined when it is. */
function notAudited(pod: PodShape, namespace: string, scope: Scope): keyof ScanCounts | undefined {
  const phase = pod.status?.phase
  if (phase === 'Succeeded' || phase === 'Failed') return 'finished'
  if (pod.metadata?.annotations?.[ANNOTATIONS.mirror] !== undefined) return 'mirror'
  const namespaceLabels = scope.namespaces?.get(namespace)
  if (!selectsNamespace(scope.selectors.namespaceSelector, namespace, namespaceLabels)) {
    return 'excludedNamespace'
  }
  const labels = isObject(pod.metadata?.labels) ? pod.metadata.labels : {}
  if (!selects(scope.selectors.objectSelector, labels)) return 'excludedLabels'
  return undefined
}

function visitPod(
  item: unknown,
  scope: Scope,
  result: ScanResult,
  options: ScanOptions,
): void | Promise<void> {
  result.counts.scanned += 1
  const pod = (isObject(item) ? item : {}) as PodShape
  const metadata = isObject(pod.metadata) ? pod.metadata : {}
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : ''
  const name = typeof metadata.name === 'string' ? metadata.name : ''
  if (namespace === '' || name === '') {
    result.skipped.push({ namespace, name, reason: 'the pod has no metadata.namespace/name' })
    return
  }
  const excluded = notAudited(pod, namespace, scope)
  if (excluded !== undefined) {
    result.counts[excluded] += 1
    return
  }
  const verdict = classifyPod(pod, namespace, scope.serviceAccounts, options.settings)
  if (verdict instanceof Promise) {
    return verdict.then((v) => record(v, pod, { namespace, name }, result))
  }
  record(verdict, pod, { namespace, name }, result)
}

function record(
  verdict: Classification,
  pod: PodShape,
  { namespace, name }: { namespace: string; name: string },
  result: ScanResult,
): void {
  if (verdict.kind === 'ok') result.counts.ok += 1
  else if (verdict.kind === 'skipped') result.skipped.push({ namespace, name, ...verdict })
  else {
    result.findings.push({
      namespace,
      name,
      uid: String(pod.metadata?.uid ?? ''),
      serviceAccount: verdict.serviceAccount,
      problem: verdict.problem,
      detail: verdict.detail,
      controller: controllerOf(pod),
      labels: pickLabels(pod),
    })
  }
}

/** The labels owner resolution reads (Deployment name convention, Knative service/revision). */
const OWNER_LABELS = [
  'pod-template-hash',
  'serving.knative.dev/service',
  'serving.knative.dev/revision',
]

function pickLabels(pod: PodShape): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const key of OWNER_LABELS) {
    const value = pod.metadata?.labels?.[key]
    if (typeof value === 'string') labels[key] = value
  }
  return labels
}

/**
 * Scans the pods in scope. Throws ClusterReadError when the set-up reads fail (configuration, namespaces,
 * ServiceAccounts); a pod listing that fails twice ends the scan with `failure` set and the findings so far.
 */
export async function scanPods(options: ScanOptions): Promise<ScanResult> {
  const selectors =
    options.selectors ??
    (await loadSelectors(options.client, options.configurationName, options.note))
  const namespaces =
    selectors.namespaceSelector === undefined ? undefined : await loadNamespaceLabels(options)
  const serviceAccounts = await loadServiceAccounts(options, options.serviceAccountReads)
  const scope: Scope = { selectors, namespaces, serviceAccounts }
  const result: ScanResult = {
    serviceAccounts,
    findings: [],
    skipped: [],
    counts: {
      scanned: 0,
      finished: 0,
      mirror: 0,
      excludedNamespace: 0,
      excludedLabels: 0,
      ok: 0,
    },
  }
  const path =
    options.namespace === undefined
      ? '/api/v1/pods'
      : `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`
  try {
    await forEachListed(
      options.client,
      { path, resource: 'pods', namespace: options.namespace },
      options.chunkSize,
      (item) => visitPod(item, scope, result, options),
      (reason) => options.note(`listing pods failed (${reason}); restarting the listing once`),
    )
  } catch (error) {
    if (!(error instanceof ClusterReadError)) throw error
    result.failure = error.message
  }
  return result
}
