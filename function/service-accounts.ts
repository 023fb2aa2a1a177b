/**
 * ServiceAccount sources. Every source resolves a `Lookup` and never rejects.
 *
 * - `get` mode: a live GET per miss behind a short TTL cache that keeps only our annotations, with concurrent
 *   lookups of one ServiceAccount sharing one GET. No LIST on a cold start (Knative scale-to-zero friendly).
 *   In a cluster the GET goes through the small in-cluster client (`in-cluster.ts`); with a kubeconfig through
 *   client-node (`kube-client-node.ts`).
 * - `watch` mode: an informer over all ServiceAccounts with a live-GET fallback (`kube-client-node.ts`).
 * - a static source from YAML/objects, for local development and tests.
 *
 * This module does not import `@kubernetes/client-node`, so the default path never loads it.
 * @module
 */
import type { InClusterClient } from './in-cluster.ts'
import { type ServiceAccountInfo, serviceAccountSchema } from './kube-objects.ts'
import type { Metrics } from './metrics.ts'
import { ANNOTATION_PREFIX } from './names.ts'
import type { Lookup, ServiceAccountSource } from './review-pod.ts'

/** A source with a lifecycle: `ready` for /readyz, `close` for shutdown. */
export interface ManagedServiceAccountSource extends ServiceAccountSource {
  ready(): boolean
  /** Why `ready()` is false, for /readyz's body (what was tried, what to do); undefined when ready. */
  notReadyReason?(): string | undefined
  close(): Promise<void>
}

/**
 * The source when no API server can be used (none configured, or its credentials cannot be read): never ready,
 * and every lookup fails with `reason`, so /readyz and each review say the same thing as the one start log line.
 */
export function createUnavailableServiceAccountSource(reason: string): ManagedServiceAccountSource {
  const failed: Lookup = { kind: 'failed', reason }
  return {
    ready: () => false,
    notReadyReason: () => reason,
    close: async () => undefined,
    cached: () => undefined,
    get: async () => failed,
  }
}

/** Keeps only what the webhook reads: name, namespace and our annotations. */
export function toServiceAccountInfo(
  sa:
    | {
        metadata?: {
          name?: string | undefined
          namespace?: string | undefined
          annotations?: Record<string, string> | null | undefined
        }
      }
    | undefined,
  fallbackNamespace: string,
): ServiceAccountInfo {
  const annotations: Record<string, string> = {}
  for (const [key, value] of Object.entries(sa?.metadata?.annotations ?? {})) {
    if (key.startsWith(`${ANNOTATION_PREFIX}/`)) annotations[key] = value
  }
  return {
    namespace: sa?.metadata?.namespace ?? fallbackNamespace,
    name: sa?.metadata?.name ?? '',
    annotations,
  }
}

/** What to check for a failed LIST/watch/GET, from its one-line reason (the informer's log line says it once). */
export function informerFix(reason: string): string {
  if (/HTTP 401/.test(reason)) {
    return "the API server rejects the token: the pod's token in KUBE_SERVICEACCOUNT_DIR, or the kubeconfig's user"
  }
  if (/HTTP 403/.test(reason)) {
    return "the webhook's ServiceAccount may not list/watch serviceaccounts: kubectl apply -k deploy/rbac (or SA_LOOKUP_MODE=get, which needs only get)"
  }
  if (/certificate|self.signed|unable to verify/i.test(reason)) {
    return "ca.crt in KUBE_SERVICEACCOUNT_DIR (or the kubeconfig's certificate-authority) must sign the API server's certificate"
  }
  if (
    /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ECONNRESET|fetch failed/i.test(reason)
  ) {
    return 'the API server is unreachable: check KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT (or the kubeconfig server) and network policies'
  }
  return 'read the error; /readyz and irsa_webhook_sa_informer_* metrics show whether it persists'
}

/** Resolves `failed` as soon as the signal aborts, even if the underlying request ignores the signal. */
function untilAborted(signal: AbortSignal): Promise<Lookup> {
  return new Promise((resolve) => {
    const done = () => resolve({ kind: 'failed', reason: 'deadline exceeded' })
    if (signal.aborted) done()
    else signal.addEventListener('abort', done, { once: true })
  })
}

/** One live GET of a ServiceAccount, bounded by `signal`; never rejects. */
export type ServiceAccountFetcher = (
  namespace: string,
  name: string,
  signal: AbortSignal,
) => Promise<Lookup>

/** The GET through the in-cluster client: 200 → found, 404 → not-found, anything else → failed. */
export function inClusterFetcher(client: InClusterClient): ServiceAccountFetcher {
  return async (namespace, name, signal) => {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}`
    try {
      const response = await client.get(path, signal)
      if (response.status === 404) return { kind: 'not-found' }
      if (response.status !== 200) {
        return { kind: 'failed', reason: `Kubernetes API answered HTTP ${response.status}` }
      }
      return {
        kind: 'found',
        serviceAccount: toServiceAccountInfo(JSON.parse(response.body), namespace),
      }
    } catch (error) {
      if (signal.aborted) return { kind: 'failed', reason: 'deadline exceeded' }
      return {
        kind: 'failed',
        reason: error instanceof Error ? error.message.slice(0, 200) : 'unknown error',
      }
    }
  }
}

export interface ApiSourceOptions {
  readonly ttlMs: number
  /** Upper bound for one GET, shared by every review waiting for it; each review also races its own deadline. */
  readonly timeoutMs: number
  readonly metrics?: Metrics
  readonly now?: () => number
  /** Releases what the fetcher holds (e.g. the in-cluster client's keep-alive sockets) on close. */
  readonly onClose?: () => void
}

/** Times a lookup and counts its result. */
async function observed(metrics: Metrics | undefined, run: () => Promise<Lookup>): Promise<Lookup> {
  const started = performance.now()
  const result = await run()
  if (metrics !== undefined) {
    metrics.lookupDuration.observe({ result: result.kind }, (performance.now() - started) / 1000)
    if (result.kind === 'failed') metrics.lookupErrors.inc({ reason: result.reason.slice(0, 40) })
  }
  return result
}

/** GET + TTL cache of found ServiceAccounts (not-found is never cached: the SA may be created any moment). */
export function createCachedServiceAccountSource(
  fetch: ServiceAccountFetcher,
  options: ApiSourceOptions,
): ManagedServiceAccountSource {
  const now = options.now ?? Date.now
  // namespace → name → entry: a hit looks up the two strings as they came in the review, building no key.
  const cache = new Map<string, Map<string, { expires: number; lookup: Lookup }>>()
  const inFlight = new Map<string, Promise<Lookup>>()
  const metrics = options.metrics
  const fresh = (namespace: string, name: string) => {
    const hit = cache.get(namespace)?.get(name)
    if (hit === undefined || hit.expires <= now()) return undefined
    metrics?.recordCache('hit')
    return hit.lookup
  }
  return {
    ready: () => true,
    close: async () => {
      cache.clear()
      options.onClose?.()
    },
    cached: fresh,
    async get(namespace, name, signal) {
      const hit = fresh(namespace, name)
      if (hit !== undefined) return hit
      metrics?.recordCache('miss')
      const key = `${namespace}/${name}`
      let pending = inFlight.get(key)
      if (pending === undefined) {
        // One GET per ServiceAccount at a time, bounded by its own timeout: a review that gives up early
        // (its own deadline) never cancels the GET for the others waiting on it.
        const timeout = AbortSignal.timeout(options.timeoutMs)
        pending = observed(options.metrics, () => fetch(namespace, name, timeout))
        pending.then((lookup) => {
          inFlight.delete(key)
          if (lookup.kind === 'found' && options.ttlMs > 0) {
            let names = cache.get(namespace)
            if (names === undefined) {
              names = new Map()
              cache.set(namespace, names)
            }
            names.set(name, { expires: now() + options.ttlMs, lookup })
          }
        })
        inFlight.set(key, pending)
      }
      return Promise.race([pending, untilAborted(signal)])
    },
  }
}

/** ServiceAccounts held in memory (local development without a cluster, tests). Non-ServiceAccounts are ignored. */
export function createStaticServiceAccountSource(
  objects: readonly unknown[],
): ManagedServiceAccountSource {
  const byKey = new Map<string, ServiceAccountInfo>()
  for (const doc of objects) {
    const parsed = serviceAccountSchema.safeParse(doc)
    if (!parsed.success) continue
    const info = toServiceAccountInfo(parsed.data, 'default')
    byKey.set(`${info.namespace}/${info.name}`, info)
  }
  const lookup = (namespace: string, name: string): Lookup => {
    const serviceAccount = byKey.get(`${namespace}/${name}`)
    return serviceAccount === undefined ? { kind: 'not-found' } : { kind: 'found', serviceAccount }
  }
  return {
    ready: () => true,
    close: async () => undefined,
    cached: lookup,
    get: async (namespace, name) => lookup(namespace, name),
  }
}
