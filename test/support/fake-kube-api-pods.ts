/**
 * Pods in the loopback fake kube-apiserver (test/support/fake-kube-api.ts), as `irsa-webhook audit` reads and heals
 * them: a paginated pod LIST (`limit` + `continue`, an expired `continue` → 410 Gone), pod GET, the eviction
 * subresource with PodDisruptionBudgets, core/v1 Event creation, and the owner objects (ReplicaSets, Jobs) the
 * audit GETs. Installed on a fake with `installPods(api)`; it only adds routes, so the base fake is untouched.
 *
 * Modelled on kube-apiserver, not on our client:
 * - LIST pagination: k8s.io/apiserver pkg/storage/etcd3/store.go `GetList`. Items come in key order
 *   (`<namespace>/<name>`); every page of one listing is served from the snapshot (resourceVersion) of the first
 *   page; `metadata.continue` is set only when more items remain, and then `metadata.remainingItemCount` too (only
 *   without a label/field selector, which this fake does not implement: it answers 400 rather than ignore one).
 *   The token is unpadded base64url (`base64.RawURLEncoding`) of the JSON
 *   `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}` (pkg/storage/continue.go `EncodeContinue`).
 * - An expired token (etcd compacted the snapshot's revision): pkg/storage/etcd3/errors.go
 *   `handleCompactedErrorForPaging` → `NewResourceExpired(inconsistentContinue)`: 410, reason `Expired`, the message
 *   below, and `metadata.continue` carrying a token at resourceVersion -1 (continue at the latest, inconsistently).
 * - Eviction: kubernetes pkg/registry/core/pod/storage/eviction.go. Pending/Succeeded/Failed pods are deleted
 *   without looking at budgets; a pod covered by a budget with `disruptionsAllowed: 0` gets 429 TooManyRequests
 *   with the cause `DisruptionBudget`; success returns `Status{status: Success}`, written with code 201 by
 *   k8s.io/apiserver pkg/endpoints/handlers/create.go (`status.Code == 0` → 201). A missing pod is a 404.
 * - Events: POST /api/v1/namespaces/NS/events; a name taken → 409 AlreadyExists.
 * @module
 */
import { randomUUID } from 'node:crypto'
import { type FakeKubeApi, kubeStatus, type RecordedRequest, type Reply } from './fake-kube-api.ts'
import {
  alreadyExists,
  failure,
  notFound,
  requestInfo,
  stripTypeMeta,
} from './kube-apiserver-wire.ts'

type Json = Record<string, unknown>

interface StoredPod {
  readonly key: string
  readonly object: Json
}

/** A PodDisruptionBudget as the eviction subresource reads it (status computed by the disruption controller). */
export interface FakeBudget {
  readonly namespace: string
  readonly name: string
  readonly matchLabels: Readonly<Record<string, string>>
  disruptionsAllowed: number
  readonly desiredHealthy: number
  readonly currentHealthy: number
}

export interface FakePods {
  /** Stores (or replaces) a pod; stamps uid, resourceVersion and creationTimestamp like the API server. */
  put(pod: object): Json
  remove(namespace: string, name: string): void
  get(namespace: string, name: string): Json | undefined
  /** Stores a namespace with the `kubernetes.io/metadata.name` label the API server adds. */
  putNamespace(name: string, labels?: Record<string, string>): void
  /** Stores an owner object (ReplicaSet, Job, …) for GET, at its API collection path. */
  putOwner(collectionPath: string, object: object): void
  addBudget(budget: FakeBudget): void
  /** Simulates an etcd compaction: every continue token issued so far is expired (410 Gone). */
  expireContinueTokens(): void
  /**
   * Called before each pod LIST page is answered, with the page's index in its listing (0: the first page): may
   * change the store (e.g. `expireContinueTokens`) or answer instead (e.g. a 500).
   */
  onListPage: ((index: number, req: RecordedRequest) => Reply | undefined) | undefined
  /** Events created, in order. */
  readonly events: Json[]
  /** Eviction requests answered, in order. */
  readonly evictions: { namespace: string; name: string; status: number }[]
}

/** kubernetes/apiserver pkg/storage/etcd3/errors.go `inconsistentContinue`. */
export const INCONSISTENT_CONTINUE =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list ' +
  'without the continue parameter, or use the continue token in this response to retrieve the remainder of the ' +
  'results. Continuing with the provided token results in an inconsistent list - objects that were created, ' +
  'modified, or deleted between the time the first chunk was returned and now may show up in the list.'

/** kubernetes pkg/registry/core/pod/storage/eviction.go `checkAndDecrement`. */
export const PDB_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."

const POD_LIST_ALL = '/api/v1/pods'
const POD_LIST = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/
const POD_ONE = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/
const EVICTION = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/eviction$/
const EVENTS = /^\/api\/v1\/namespaces\/([^/]+)\/events$/

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url')
}

function decodeContinue(token: string): { rv: number; start: string } | undefined {
  try {
    // DecodeContinue reads it with base64.RawURLEncoding: the standard alphabet or padding is not valid.
    if (!/^[A-Za-z0-9_-]+$/.test(token)) return undefined
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Json
    if (parsed['v'] !== 'meta.k8s.io/v1') return undefined
    if (typeof parsed['rv'] !== 'number' || typeof parsed['start'] !== 'string') return undefined
    return { rv: parsed['rv'], start: parsed['start'] }
  } catch {
    return undefined
  }
}

function podStatus(pod: Json): { phase?: string } {
  return (pod['status'] ?? {}) as { phase?: string }
}

function labelsOf(pod: Json): Record<string, string> {
  return ((pod['metadata'] as Json)['labels'] ?? {}) as Record<string, string>
}

class PodStore implements FakePods {
  readonly events: Json[] = []
  readonly evictions: { namespace: string; name: string; status: number }[] = []
  onListPage: FakePods['onListPage']
  readonly #api: FakeKubeApi
  readonly #pods = new Map<string, StoredPod>()
  readonly #budgets: FakeBudget[] = []
  readonly #owners = new Map<string, Json>()
  /** resourceVersion → the sorted pods of that moment (what a listing's later pages are served from). */
  readonly #snapshots = new Map<number, readonly StoredPod[]>()
  /** continue token → the index of the page it asks for (for `onListPage`). */
  readonly #served = new Map<string, number>()
  #sorted: readonly StoredPod[] | undefined
  #rv = 1000

  constructor(api: FakeKubeApi) {
    this.#api = api
  }

  put(pod: object): Json {
    const object = structuredClone(pod) as Json
    const metadata = (object['metadata'] ?? {}) as Json
    const namespace = String(metadata['namespace'] ?? 'default')
    const name = String(metadata['name'])
    const key = `${namespace}/${name}`
    this.#rv += 1
    object['metadata'] = {
      ...metadata,
      namespace,
      uid: metadata['uid'] ?? randomUUID(),
      resourceVersion: String(this.#rv),
      creationTimestamp: metadata['creationTimestamp'] ?? '2026-12-04T09:00:00Z',
    }
    object['apiVersion'] = 'v1'
    object['kind'] = 'Pod'
    this.#pods.set(key, { key, object })
    this.#sorted = undefined
    return object
  }

  remove(namespace: string, name: string): void {
    this.#rv += 1
    this.#pods.delete(`${namespace}/${name}`)
    this.#sorted = undefined
  }

  get(namespace: string, name: string): Json | undefined {
    return this.#pods.get(`${namespace}/${name}`)?.object
  }

  putNamespace(name: string, labels: Record<string, string> = {}): void {
    // pkg/registry/core/namespace/strategy.go: the API server sets kubernetes.io/metadata.name on every namespace.
    this.#api.putObject('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } },
    })
  }

  putOwner(collectionPath: string, object: object): void {
    const name = String(((object as Json)['metadata'] as Json)['name'])
    this.#owners.set(`${collectionPath}/${name}`, structuredClone(object) as Json)
  }

  addBudget(budget: FakeBudget): void {
    this.#budgets.push(budget)
  }

  expireContinueTokens(): void {
    this.#snapshots.clear()
  }

  install(): void {
    const api = this.#api
    api.route('GET', POD_LIST_ALL, (req) => this.#list(req, undefined))
    api.route('GET', POD_LIST, (req) => this.#list(req, POD_LIST.exec(req.path)?.[1]))
    api.route('GET', POD_ONE, (req) => this.#getPod(req))
    api.route('POST', EVICTION, (req) => this.#evict(req))
    api.route('POST', EVENTS, (req) => this.#createEvent(req))
    // Only the owners the audit reads, so other objects under apps/batch stay with the base fake.
    api.route(
      'GET',
      /^\/apis\/(apps\/v1\/namespaces\/[^/]+\/replicasets|batch\/v1\/namespaces\/[^/]+\/jobs)\/[^/]+$/,
      (req) => this.#getOwner(req),
    )
  }

  #current(): readonly StoredPod[] {
    this.#sorted ??= [...this.#pods.values()].sort((a, b) =>
      a.key < b.key ? -1 : a.key > b.key ? 1 : 0,
    )
    return this.#sorted
  }

  #list(req: RecordedRequest, namespace: string | undefined): Reply {
    if (req.query.has('labelSelector') || req.query.has('fieldSelector')) {
      return kubeStatus(400, 'fake-kube-api: label and field selectors are not implemented')
    }
    const limit = Number(req.query.get('limit') ?? '0')
    const token = req.query.get('continue')
    const index = token ? (this.#served.get(token) ?? 1) : 0
    const injected = this.onListPage?.(index, req)
    if (injected !== undefined) return injected
    const from = this.#startOf(token)
    if ('status' in from) return from
    const { rv, start } = from
    const all = (this.#snapshots.get(rv) ?? []).filter(
      (pod) => namespace === undefined || pod.key.startsWith(`${namespace}/`),
    )
    const first = all.findIndex((pod) => pod.key >= start)
    const rest = first < 0 ? [] : all.slice(first)
    const page = limit > 0 ? rest.slice(0, limit) : rest
    const metadata: Json = { resourceVersion: String(rv) }
    const last = page.at(-1)
    if (page.length < rest.length && last !== undefined) {
      metadata['continue'] = encodeContinue(rv, `${last.key}\u0000`)
      this.#served.set(String(metadata['continue']), index + 1)
      metadata['remainingItemCount'] = rest.length - page.length
    }
    return {
      status: 200,
      body: {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata,
        items: page.map((pod) => stripTypeMeta(pod.object)),
      },
    }
  }

  /** The snapshot and key a page starts at; a new listing takes a snapshot. rv -1: the latest (inconsistent). */
  #startOf(token: string | null): { rv: number; start: string } | Reply {
    if (!token) {
      this.#snapshots.set(this.#rv, this.#current())
      return { rv: this.#rv, start: '' }
    }
    const decoded = decodeContinue(token)
    if (decoded === undefined) {
      return kubeStatus(400, 'invalid continue token: continue key is not valid')
    }
    if (decoded.rv === -1) {
      this.#snapshots.set(this.#rv, this.#current())
      return { rv: this.#rv, start: decoded.start }
    }
    if (!this.#snapshots.has(decoded.rv)) return this.#expired(decoded.start)
    return decoded
  }

  #expired(start: string): Reply {
    const gone = failure(410, 'Expired', INCONSISTENT_CONTINUE)
    return {
      ...gone,
      body: { ...(gone.body as Json), metadata: { continue: encodeContinue(-1, start) } },
    }
  }

  #getPod(req: RecordedRequest): Reply {
    const [, namespace = '', name = ''] = POD_ONE.exec(req.path) ?? []
    const pod = this.get(namespace, name)
    if (pod === undefined) return notFound(requestInfo(req))
    return { status: 200, body: pod }
  }

  #getOwner(req: RecordedRequest): Reply {
    const object = this.#owners.get(req.path)
    if (object !== undefined) return { status: 200, body: object }
    return notFound(requestInfo(req))
  }

  #evict(req: RecordedRequest): Reply {
    const [, namespace = '', name = ''] = EVICTION.exec(req.path) ?? []
    const reply = this.#evictionReply(req, namespace, name)
    this.evictions.push({ namespace, name, status: reply.status })
    return reply
  }

  #evictionReply(req: RecordedRequest, namespace: string, name: string): Reply {
    let eviction: Json
    try {
      eviction = JSON.parse(req.body) as Json
    } catch {
      return kubeStatus(400, 'the body of the request was in an unknown format')
    }
    if (((eviction['metadata'] ?? {}) as Json)['name'] !== name) {
      return kubeStatus(400, 'name in URL does not match name in Eviction object')
    }
    const pod = this.get(namespace, name)
    if (pod === undefined) return notFound(requestInfo(req))
    const phase = podStatus(pod).phase
    const ignoreBudgets = phase === 'Pending' || phase === 'Succeeded' || phase === 'Failed'
    const budget = ignoreBudgets ? undefined : this.#budgetFor(namespace, labelsOf(pod))
    if (budget !== undefined && budget.disruptionsAllowed <= 0) {
      return failure(429, 'TooManyRequests', PDB_VIOLATION, {
        causes: [
          {
            reason: 'DisruptionBudget',
            message: `The disruption budget ${budget.name} needs ${budget.desiredHealthy} healthy pods and has ${budget.currentHealthy} currently`,
          },
        ],
      })
    }
    if (budget !== undefined) budget.disruptionsAllowed -= 1
    this.remove(namespace, name)
    return {
      status: 201,
      body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 },
    }
  }

  #budgetFor(namespace: string, labels: Record<string, string>): FakeBudget | undefined {
    // eviction.go getPodDisruptionBudgets: an empty selector matches nothing.
    return this.#budgets.find(
      (budget) =>
        budget.namespace === namespace &&
        Object.keys(budget.matchLabels).length > 0 &&
        Object.entries(budget.matchLabels).every(([key, value]) => labels[key] === value),
    )
  }

  #createEvent(req: RecordedRequest): Reply {
    const [, namespace = ''] = EVENTS.exec(req.path) ?? []
    const event = JSON.parse(req.body) as Json
    const metadata = (event['metadata'] ?? {}) as Json
    const name = String(metadata['name'] ?? '')
    const exists = this.events.some((e) => {
      const m = e['metadata'] as Json
      return m['namespace'] === namespace && m['name'] === name
    })
    if (exists) return alreadyExists(requestInfo(req), name)
    const stored = { ...event, metadata: { ...metadata, namespace, uid: randomUUID() } }
    this.events.push(stored)
    return { status: 201, body: stored }
  }
}

/** Adds the pod routes to a fake API server; returns the store to fill and inspect. */
export function installPods(api: FakeKubeApi): FakePods {
  const store = new PodStore(api)
  store.install()
  return store
}
