/**
 * The parts of the Kubernetes adapter that need `@kubernetes/client-node`: kubeconfig loading (local development,
 * auth plugins), the ServiceAccount GET through `CoreV1Api`, and the watch-mode informer. `handler.ts` imports this
 * module only when one of those is needed, so the default in-cluster path never pays for loading client-node.
 * @module
 */
import {
  ApiException,
  type ConfigurationOptions,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  Observable,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node'
import type { Lookup } from './review-pod.ts'
import {
  type ApiSourceOptions,
  createCachedServiceAccountSource,
  type ManagedServiceAccountSource,
  type ServiceAccountFetcher,
  toServiceAccountInfo,
} from './service-accounts.ts'

/** Loads `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster config; returns it with its server URL. */
export function loadKubeConfig(): { kubeConfig: KubeConfig; server: string } {
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromDefault()
  return { kubeConfig, server: kubeConfig.getCurrentCluster()?.server ?? 'in-cluster' }
}

function describeFailure(error: unknown): string {
  if (error instanceof ApiException) return `Kubernetes API answered HTTP ${error.code}`
  if (error instanceof Error && error.name === 'AbortError') return 'deadline exceeded'
  if (error instanceof Error) return error.message.slice(0, 200)
  return 'unknown error'
}

/** The ServiceAccount GET through client-node's CoreV1Api, bounded by the signal. */
function clientNodeFetcher(kubeConfig: KubeConfig): ServiceAccountFetcher {
  let core: CoreV1Api | undefined
  return async (namespace, name, signal): Promise<Lookup> => {
    core ??= kubeConfig.makeApiClient(CoreV1Api)
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
  const fromInformer = (namespace: string, name: string): Lookup | undefined => {
    const cached = informer.get(name, namespace)
    options.metrics?.recordCache(cached === undefined ? 'miss' : 'hit')
    return cached === undefined
      ? undefined
      : { kind: 'found', serviceAccount: toServiceAccountInfo(cached, namespace) }
  }
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
    cached: fromInformer,
    async get(namespace, name, signal) {
      return fromInformer(namespace, name) ?? fallback.get(namespace, name, signal)
    },
  }
}
