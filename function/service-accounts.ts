/**
 * ServiceAccount sources: the Kubernetes adapter (the only module that calls `@kubernetes/client-node` APIs) and
 * an in-memory source for local development. Every source resolves a `Lookup` and never rejects.
 *
 * - `get` mode: a live GET per miss behind a short TTL cache that keeps only our annotations, with concurrent
 *   lookups of one ServiceAccount sharing one GET. No LIST on a cold start (Knative scale-to-zero friendly).
 * - `watch` mode: an informer over all ServiceAccounts; a miss falls back to a live GET, so a ServiceAccount created
 *   a moment before its pod is never missed (the informer race of EKS #174).
 * @module
 */
import {
  ApiException,
  type ConfigurationOptions,
  CoreV1Api,
  type KubeConfig,
  makeInformer,
  Observable,
  type RequestContext,
  type ResponseContext,
  type V1ServiceAccount,
} from '@kubernetes/client-node'
import { type ServiceAccountInfo, serviceAccountSchema } from './kube-objects.ts'
import type { Metrics } from './metrics.ts'
import { ANNOTATION_PREFIX } from './names.ts'
import type { Lookup, ServiceAccountSource } from './review-pod.ts'

/** A source with a lifecycle: `ready` for /readyz, `close` for shutdown. */
export interface ManagedServiceAccountSource extends ServiceAccountSource {
  ready(): boolean
  close(): Promise<void>
}

/** Keeps only what the webhook reads: name, namespace and our annotations. */
export function toServiceAccountInfo(
  sa: V1ServiceAccount | undefined,
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

function describeFailure(error: unknown): string {
  if (error instanceof ApiException) return `Kubernetes API answered HTTP ${error.code}`
  if (error instanceof Error && error.name === 'AbortError') return 'deadline exceeded'
  if (error instanceof Error) return error.message.slice(0, 200)
  return 'unknown error'
}

/** Resolves `failed` as soon as the signal aborts, even if the underlying request ignores the signal. */
function untilAborted(signal: AbortSignal): Promise<Lookup> {
  return new Promise((resolve) => {
    const done = () => resolve({ kind: 'failed', reason: 'deadline exceeded' })
    if (signal.aborted) done()
    else signal.addEventListener('abort', done, { once: true })
  })
}

/** One live GET of a ServiceAccount, bounded by `signal`. */
async function fetchServiceAccount(
  core: CoreV1Api,
  namespace: string,
  name: string,
  signal: AbortSignal,
): Promise<Lookup> {
  // client-node's object-parameter API runs middleware as Observables (a plain async function fails there).
  const options: ConfigurationOptions = {
    middleware: [
      {
        pre: (context: RequestContext) => {
          context.setSignal(signal)
          return new Observable(Promise.resolve(context))
        },
        post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  }
  try {
    const sa = await core.readNamespacedServiceAccount({ name, namespace }, options)
    return { kind: 'found', serviceAccount: toServiceAccountInfo(sa, namespace) }
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return { kind: 'not-found' }
    return { kind: 'failed', reason: signal.aborted ? 'deadline exceeded' : describeFailure(error) }
  }
}

export interface ApiSourceOptions {
  readonly ttlMs: number
  /** Upper bound for one GET, shared by every review waiting for it; each review also races its own deadline. */
  readonly timeoutMs: number
  readonly metrics?: Metrics
  readonly now?: () => number
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
export function createApiServiceAccountSource(
  kubeConfig: KubeConfig,
  options: ApiSourceOptions,
): ManagedServiceAccountSource {
  const now = options.now ?? Date.now
  const cache = new Map<string, { expires: number; lookup: Lookup }>()
  const inFlight = new Map<string, Promise<Lookup>>()
  let core: CoreV1Api | undefined
  const api = () => {
    core ??= kubeConfig.makeApiClient(CoreV1Api)
    return core
  }
  return {
    ready: () => true,
    close: async () => cache.clear(),
    async get(namespace, name, signal) {
      const key = `${namespace}/${name}`
      const hit = cache.get(key)
      if (hit !== undefined && hit.expires > now()) {
        options.metrics?.cache.inc({ result: 'hit' })
        return hit.lookup
      }
      options.metrics?.cache.inc({ result: 'miss' })
      let pending = inFlight.get(key)
      if (pending === undefined) {
        // One GET per ServiceAccount at a time, bounded by its own timeout: a review that gives up early
        // (its own deadline) never cancels the GET for the others waiting on it.
        const timeout = AbortSignal.timeout(options.timeoutMs)
        pending = observed(options.metrics, () =>
          fetchServiceAccount(api(), namespace, name, timeout),
        )
        pending.then((lookup) => {
          inFlight.delete(key)
          if (lookup.kind === 'found' && options.ttlMs > 0) {
            cache.set(key, { expires: now() + options.ttlMs, lookup })
          }
        })
        inFlight.set(key, pending)
      }
      return Promise.race([pending, untilAborted(signal)])
    },
  }
}

/**
 * Informer over all ServiceAccounts with a live-GET fallback on a miss. `ready()` turns true after the first LIST.
 * The informer restarts itself after an error, one second later, until closed.
 */
export function createWatchServiceAccountSource(
  kubeConfig: KubeConfig,
  options: ApiSourceOptions & { readonly onError?: (error: unknown) => void },
): ManagedServiceAccountSource & { start(): Promise<void> } {
  const core = kubeConfig.makeApiClient(CoreV1Api)
  // The informer's start() resolves even when the LIST fails (it reports the error instead), so readiness
  // follows a LIST that actually succeeded, including one made by a restart.
  let synced = false
  const informer = makeInformer(kubeConfig, '/api/v1/serviceaccounts', async () => {
    const list = await core.listServiceAccountForAllNamespaces()
    synced = true
    return list
  })
  const fallback = createApiServiceAccountSource(kubeConfig, { ...options, ttlMs: 0 })
  let closed = false
  let restart: NodeJS.Timeout | undefined
  informer.on('error', (error) => {
    options.onError?.(error)
    if (!closed) restart = setTimeout(() => void informer.start().catch(options.onError), 1000)
  })
  return {
    async start() {
      await informer.start()
    },
    ready: () => synced,
    async close() {
      closed = true
      clearTimeout(restart)
      await informer.stop()
    },
    async get(namespace, name, signal) {
      const cached = informer.get(name, namespace)
      options.metrics?.cache.inc({ result: cached === undefined ? 'miss' : 'hit' })
      if (cached !== undefined) {
        return { kind: 'found', serviceAccount: toServiceAccountInfo(cached, namespace) }
      }
      return fallback.get(namespace, name, signal)
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
    const { name, namespace = 'default', annotations } = parsed.data.metadata
    byKey.set(`${namespace}/${name}`, { name, namespace, annotations: annotations ?? {} })
  }
  return {
    ready: () => true,
    close: async () => undefined,
    async get(namespace, name) {
      const serviceAccount = byKey.get(`${namespace}/${name}`)
      return serviceAccount === undefined
        ? { kind: 'not-found' }
        : { kind: 'found', serviceAccount }
    },
  }
}
