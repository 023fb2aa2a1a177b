/**
 * The parts of the Kubernetes adapter that need `@kubernetes/client-node`: kubeconfig loading (local development,
 * auth plugins) or the in-cluster KubeConfig built from the same settings as `in-cluster.ts`, the ServiceAccount
 * GET through `CoreV1Api`, and the watch-mode informer. `handler.ts` imports this
 * module only when one of those is needed, so the default in-cluster path never pays for loading client-node.
 * @module
 */
import { readFileSync } from 'node:fs'
import {
  ApiException,
  type ConfigurationOptions,
  CoreV1Api,
  KubeConfig,
  ListWatch,
  Observable,
  type RequestContext,
  type ResponseContext,
  type V1ServiceAccount,
  Watch,
} from '@kubernetes/client-node'
import { type InClusterSettings, inClusterServer } from './in-cluster.ts'
import type { Lookup } from './review-pod.ts'
import {
  type ApiSourceOptions,
  createCachedServiceAccountSource,
  type ManagedServiceAccountSource,
  type ServiceAccountFetcher,
  toServiceAccountInfo,
} from './service-accounts.ts'

/**
 * The kubeconfig files of `KUBECONFIG`, merged in order as client-node's `loadFromDefault` merges them (unlike
 * kubectl, a later file's current-context wins, and a cluster, user or context named twice is an error); returns
 * the config with its server URL.
 */
export function loadKubeConfigFiles(paths: readonly string[]): {
  kubeConfig: KubeConfig
  server: string
} {
  const [first, ...more] = paths
  const kubeConfig = new KubeConfig()
  if (first !== undefined) kubeConfig.loadFromFile(first)
  for (const path of more) {
    const next = new KubeConfig()
    next.loadFromFile(path)
    kubeConfig.mergeConfig(next)
  }
  const server = kubeConfig.getCurrentCluster()?.server
  if (server === undefined) throw new Error('its current context names no cluster')
  return { kubeConfig, server }
}

/**
 * The in-cluster KubeConfig built from the same settings as the `get` mode's client (`in-cluster.ts`): HTTPS to
 * KUBERNETES_SERVICE_HOST/PORT verified with `ca.crt`, the rotating token file, the pod's namespace. Unlike
 * client-node's `loadFromDefault`, it never looks elsewhere (no `http://localhost:8080` fallback).
 */
export function inClusterKubeConfig(settings: InClusterSettings): {
  kubeConfig: KubeConfig
  server: string
} {
  const server = inClusterServer(settings)
  const kubeConfig = new KubeConfig()
  let namespace: string | undefined
  try {
    namespace = readFileSync(settings.namespaceFile, 'utf8').trim() || undefined
  } catch {
    // Optional: a projected volume may carry only the token and ca.crt.
  }
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, caFile: settings.caFile, skipTLSVerify: false }],
    users: [
      {
        name: 'in-cluster',
        // client-node's file token: re-read every 60 s, like the get mode's client.
        authProvider: { name: 'tokenFile', config: { tokenFile: settings.tokenFile } },
      },
    ],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster', namespace }],
    currentContext: 'in-cluster',
  })
  return { kubeConfig, server }
}

/** One line for a failed request: the HTTP status, or the network error with its cause (undici's `fetch failed`). */
function describeFailure(error: unknown): string {
  if (error instanceof ApiException) return `Kubernetes API answered HTTP ${error.code}`
  // client-node's Watch rejects a non-200 answer with an Error carrying `statusCode`.
  const status = (error as { statusCode?: unknown } | undefined)?.statusCode
  if (typeof status === 'number') return `Kubernetes API answered HTTP ${status}`
  if (error instanceof Error && error.name === 'AbortError') return 'deadline exceeded'
  if (error instanceof Error) {
    const cause = error.cause as { code?: string; message?: string } | undefined
    const detail = cause?.code ?? cause?.message
    return (detail === undefined ? error.message : `${error.message}: ${detail}`).slice(0, 200)
  }
  return 'unknown error'
}

/** Request options that end a CoreV1Api call when `signal` aborts. */
function abortableBy(signal: AbortSignal): ConfigurationOptions {
  // client-node's object-parameter API runs middleware as Observables (a plain async function fails there).
  return {
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
}

/** The ServiceAccount GET through client-node's CoreV1Api, bounded by the signal. */
function clientNodeFetcher(kubeConfig: KubeConfig): ServiceAccountFetcher {
  let core: CoreV1Api | undefined
  return async (namespace, name, signal): Promise<Lookup> => {
    core ??= kubeConfig.makeApiClient(CoreV1Api)
    try {
      const sa = await core.readNamespacedServiceAccount({ name, namespace }, abortableBy(signal))
      return { kind: 'found', serviceAccount: toServiceAccountInfo(sa, namespace) }
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return { kind: 'not-found' }
      return {
        kind: 'failed',
        reason: signal.aborted ? 'deadline exceeded' : describeFailure(error),
      }
    }
  }
}

/** GET + TTL cache through a kubeconfig (see `createCachedServiceAccountSource`). */
export function createApiServiceAccountSource(
  kubeConfig: KubeConfig,
  options: ApiSourceOptions,
): ManagedServiceAccountSource {
  return createCachedServiceAccountSource(clientNodeFetcher(kubeConfig), options)
}

/** The informer's restart delay after the n-th failure in a row: 1 s doubling to 30 s (client-node's own bounds). */
function retryDelayMs(consecutive: number): number {
  return Math.min(1000 * 2 ** Math.max(0, consecutive - 1), 30_000)
}

/**
 * A Watch that asks the API server to end each watch after `timeoutSeconds`. client-go's reflector does the same
 * (k8s.io/client-go/tools/cache/reflector.go: 5-10 min); without it kube-apiserver ends a watch only after
 * `--min-request-timeout` × [1, 2), 30-60 min by default (k8s.io/apiserver/pkg/endpoints/handlers/get.go).
 */
class BoundedWatch extends Watch {
  readonly #timeoutSeconds: number
  readonly #opening = new Set<Promise<AbortController>>()
  #closed = false
  constructor(kubeConfig: KubeConfig, timeoutSeconds: number) {
    super(kubeConfig)
    this.#timeoutSeconds = timeoutSeconds
  }
  override async watch(...[path, query, callback, done]: Parameters<Watch['watch']>) {
    if (this.#closed) {
      done(new Error('closed'))
      return new AbortController()
    }
    const opening = super.watch(
      path,
      { ...query, timeoutSeconds: this.#timeoutSeconds },
      callback,
      done,
    )
    this.#opening.add(opening)
    try {
      const controller = await opening
      if (this.#closed) controller.abort()
      return controller
    } catch (error) {
      // Watch rejects when it cannot build the request (client-node reads the CA and token files for each one).
      // ListWatch re-watches from a `done` callback nobody awaits, where a rejection would go unhandled (ending the
      // process) and leave the informer stopped: report it through `done`, as a failed watch.
      done(error)
      return new AbortController()
    } finally {
      this.#opening.delete(opening)
    }
  }
  /** Refuses new watches; resolves once the watches being opened have been answered (and then aborted). */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#opening])
  }
}

export interface WatchSourceOptions extends ApiSourceOptions {
  /** The API server URL, for /readyz's body. */
  readonly server: string
  /**
   * `timeoutSeconds` of every watch. The API server checks authorization when a watch starts, not while it runs:
   * a watch that ends and restarts at this bound is what notices a revoked permission. Without it a busy watch
   * lasts the API server's own timeout (30-60 min by default).
   */
  readonly watchTimeoutSeconds: number
  /** `ready()` turns false once the informer has been out of sync this long (0: never). */
  readonly unreadyAfterMs: number
  /** Told of every failed LIST or watch: a one-line reason and how many failed in a row (1: a new streak). */
  readonly onError?: (reason: string, consecutive: number) => void
  /** Told when a LIST succeeds after `failures` failures in a row. */
  readonly onRecovered?: (failures: number) => void
}

/**
 * Informer over all ServiceAccounts with a live-GET fallback on a miss.
 *
 * - The API server authorizes a watch when it starts (revoking access does not end a running watch), so a revoked
 *   permission shows at the next watch: within `watchTimeoutSeconds`, or 30 s after the last event (client-node's
 *   request timeout in its `watch.js`), whichever comes first. Cached ServiceAccounts keep being answered until then.
 *
 * - `ready()` turns true after the first LIST, and false again once the informer has been out of sync (a failed
 *   watch or LIST, no successful LIST since) for longer than `unreadyAfterMs`.
 * - After a failure the informer relists, as client-go's reflector does (client-node's own restart would only
 *   re-watch): a fresh ListWatch LISTs after `retryDelayMs`, backing off, until one succeeds; lookups keep being
 *   answered from the last successful LIST meanwhile (the fallback GET covers misses).
 * - Failed LISTs and the time out of sync are on /metrics (`Metrics.watchInformer`).
 */
export function createWatchServiceAccountSource(
  kubeConfig: KubeConfig,
  options: WatchSourceOptions,
): ManagedServiceAccountSource & { start(): Promise<void> } {
  const now = options.now ?? Date.now
  const core = kubeConfig.makeApiClient(CoreV1Api)
  const watch = new BoundedWatch(kubeConfig, options.watchTimeoutSeconds)
  const fallback = createApiServiceAccountSource(kubeConfig, { ...options, ttlMs: 0 })
  let listErrors = 0
  let failures = 0
  let lastError: string | undefined
  // Out of sync from the start until the first LIST, and from a failure until the next successful LIST.
  let outOfSyncSince: number | undefined = now()
  let closed = false
  let restart: NodeJS.Timeout | undefined
  const closing = new AbortController()
  // `serving` answers lookups: the last informer whose LIST succeeded (none before the first, so not ready);
  // `running` is the latest one started.
  let serving: ListWatch<V1ServiceAccount> | undefined
  let running: ListWatch<V1ServiceAccount> | undefined

  const synced = (informer: ListWatch<V1ServiceAccount>) => {
    if (failures > 0) options.onRecovered?.(failures)
    failures = 0
    lastError = undefined
    outOfSyncSince = undefined
    if (serving !== informer) {
      const previous = serving
      serving = informer
      void previous?.stop()
    }
  }
  const failed = (informer: ListWatch<V1ServiceAccount>, error: unknown) => {
    // Once per informer run: a failed ListWatch does not go on by itself, a fresh one is started below.
    if (closed || informer !== running) return
    running = undefined
    failures += 1
    lastError = describeFailure(error)
    outOfSyncSince ??= now()
    options.onError?.(lastError, failures)
    restart = setTimeout(startInformer, retryDelayMs(failures))
  }
  const startInformer = () => {
    if (closed) return Promise.resolve()
    const informer: ListWatch<V1ServiceAccount> = new ListWatch(
      '/api/v1/serviceaccounts',
      watch,
      async () => {
        let list: Awaited<ReturnType<typeof core.listServiceAccountForAllNamespaces>>
        try {
          list = await core.listServiceAccountForAllNamespaces({}, abortableBy(closing.signal))
        } catch (error) {
          if (!closed) listErrors += 1
          throw error
        }
        // ListWatch goes on to watch after a LIST even when stopped meanwhile: a closed source must not.
        if (closed) throw new Error('closed')
        // ListWatch stores the items after this returns; serve from this informer only then.
        setImmediate(() => {
          if (!closed) synced(informer)
        })
        return list
      },
      false,
    )
    informer.on('error', (error) => failed(informer, error))
    running = informer
    // start() resolves once the LIST and the watch request are done, failed or not (failures arrive as 'error',
    // a watch that cannot even be built included: BoundedWatch reports it so); the catch is for anything else.
    return informer.start().catch((error: unknown) => failed(informer, error))
  }
  const outOfSyncMs = () => (outOfSyncSince === undefined ? 0 : now() - outOfSyncSince)
  const ready = () =>
    serving !== undefined &&
    (options.unreadyAfterMs === 0 || outOfSyncMs() < options.unreadyAfterMs)
  options.metrics?.watchInformer(() => ({ listErrors, outOfSyncSeconds: outOfSyncMs() / 1000 }))
  const fromInformer = (namespace: string, name: string): Lookup | undefined => {
    const cached = serving?.get(name, namespace)
    options.metrics?.recordCache(cached === undefined ? 'miss' : 'hit')
    return cached === undefined
      ? undefined
      : { kind: 'found', serviceAccount: toServiceAccountInfo(cached, namespace) }
  }
  return {
    start: startInformer,
    ready,
    notReadyReason() {
      if (ready()) return undefined
      const last =
        lastError === undefined ? '' : `: ${failures} failed in a row, the last with ${lastError}`
      if (serving === undefined)
        return `waiting for the first LIST of ServiceAccounts from ${options.server}${last}`
      const seconds = Math.round(outOfSyncMs() / 1000)
      return `the ServiceAccount informer has been out of sync with ${options.server} for ${seconds} s (bound ${options.unreadyAfterMs / 1000} s)${last}`
    },
    // Ends every request the source has open: the LIST in flight, the watches (once answered), the running ones.
    async close() {
      closed = true
      clearTimeout(restart)
      closing.abort()
      await watch.close()
      await Promise.all([running?.stop(), serving?.stop()])
    },
    cached: fromInformer,
    async get(namespace, name, signal) {
      return fromInformer(namespace, name) ?? fallback.get(namespace, name, signal)
    },
  }
}
