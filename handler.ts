/**
 * Process entry and composition root: the only file that reads `process.env`, builds clients and starts serving.
 *
 * - Knative (`K_SERVICE` set): plain HTTP on `$PORT` (TLS ends at the gateway).
 * - Classic: HTTPS on `PORT` (8443) from `TLS_CERT_PATH`/`TLS_KEY_PATH`, hot-reloaded.
 * - `--dev`: plain HTTP on 127.0.0.1:8080; ServiceAccounts from `SERVICE_ACCOUNTS_FILE`, else the cluster of
 *   `$KUBECONFIG` when set, else the embedded `examples/service-accounts.yaml` (works with no cluster).
 * @module
 */
import { readFileSync } from 'node:fs'
import { type Logger, pino } from 'pino'
import { createApp } from './function/app.ts'
import {
  API_SERVER_FIX,
  type ApiServerSettings,
  apiServerSettings,
  appOptions,
  type Config,
  listenPort,
  loadConfig,
  serveMode,
} from './function/config.ts'
import { createInClusterClient, inClusterProblem } from './function/in-cluster.ts'
import { createMetrics, type Metrics } from './function/metrics.ts'
import { startServer } from './function/server.ts'
import {
  createCachedServiceAccountSource,
  createStaticServiceAccountSource,
  createUnavailableServiceAccountSource,
  inClusterFetcher,
  informerFix,
  type ManagedServiceAccountSource,
} from './function/service-accounts.ts'
import { VERSION } from './function/version.ts'

const DEV_SERVICE_ACCOUNTS = new URL('./examples/service-accounts.yaml', import.meta.url)

interface Source {
  readonly source: ManagedServiceAccountSource
  readonly description: string
}

/** The one start line and the source that repeats it in /readyz and every review, when no API server can be used. */
function unavailable(log: Logger, problem: string, fix: string): Source {
  log.error({ problem, fix }, 'no Kubernetes API server configured')
  return {
    source: createUnavailableServiceAccountSource(
      `no Kubernetes API server configured: ${problem}; ${fix}`,
    ),
    description: 'none',
  }
}

/** The informer's failures: one warning per streak (or when the reason changes), debug lines in between. */
function informerLog(log: Logger, server: string) {
  let previous: string | undefined
  return {
    onError(reason: string, consecutive: number) {
      const fields = { server, error: reason, failures: consecutive, fix: informerFix(reason) }
      if (consecutive === 1 || reason !== previous) {
        log.warn(fields, 'ServiceAccount informer cannot list/watch; retrying with backoff')
      } else {
        log.debug(fields, 'ServiceAccount informer still failing')
      }
      previous = reason
    },
    onRecovered(failures: number) {
      previous = undefined
      log.info({ server, failures }, 'ServiceAccount informer in sync again')
    },
  }
}

interface LookupOptions {
  readonly ttlMs: number
  readonly timeoutMs: number
  readonly metrics: Metrics
}

/** `get` with a kubeconfig, or `watch` (either settings): the clients of @kubernetes/client-node, loaded only here. */
async function clientNodeSource(
  api: Exclude<ApiServerSettings, { kind: 'none' }>,
  config: Config,
  options: LookupOptions,
  log: Logger,
): Promise<Source> {
  const kube = await import('./function/kube-client-node.ts')
  let loaded: ReturnType<typeof kube.loadKubeConfigFiles>
  try {
    loaded =
      api.kind === 'in-cluster'
        ? kube.inClusterKubeConfig(api.settings)
        : kube.loadKubeConfigFiles(api.paths)
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    const from = api.kind === 'in-cluster' ? api.from : `KUBECONFIG=${config.KUBECONFIG}`
    return unavailable(log, `${from}: ${reason}`, API_SERVER_FIX)
  }
  const { kubeConfig, server } = loaded
  if (config.SA_LOOKUP_MODE === 'get') {
    return {
      source: kube.createApiServiceAccountSource(kubeConfig, options),
      description: `GET ${server}`,
    }
  }
  const source = kube.createWatchServiceAccountSource(kubeConfig, {
    ...options,
    server,
    watchTimeoutSeconds: config.SA_WATCH_TIMEOUT_SECONDS,
    unreadyAfterMs: config.SA_WATCH_UNREADY_AFTER_SECONDS * 1000,
    ...informerLog(log, server),
  })
  // Serve at once (misses fall back to GET); /readyz waits for the first LIST.
  void source.start()
  return { source, description: `watch ${server}` }
}

async function createSource(
  config: Config,
  dev: boolean,
  metrics: Metrics,
  log: Logger,
): Promise<Source> {
  const file =
    config.SERVICE_ACCOUNTS_FILE ?? (dev && !config.KUBECONFIG ? DEV_SERVICE_ACCOUNTS : undefined)
  if (file !== undefined) {
    const { parseYamlDocuments } = await import('./function/yaml.ts')
    const source = createStaticServiceAccountSource(parseYamlDocuments(readFileSync(file, 'utf8')))
    return { source, description: `file ${file instanceof URL ? file.pathname : file}` }
  }
  // One source of API server settings for every lookup mode (function/config.ts).
  const api = apiServerSettings(config)
  if (api.kind === 'none') return unavailable(log, api.problem, api.fix)
  const options = {
    ttlMs: config.SA_CACHE_TTL_SECONDS * 1000,
    timeoutMs: config.LOOKUP_TIMEOUT_MS,
    metrics,
  }
  if (api.kind === 'in-cluster') {
    const problem = inClusterProblem(api.settings)
    if (problem !== undefined) return unavailable(log, `${api.from}: ${problem}`, API_SERVER_FIX)
  }
  if (api.kind === 'kubeconfig' || config.SA_LOOKUP_MODE === 'watch') {
    return clientNodeSource(api, config, options, log)
  }
  // `get` mode in a pod needs only the pod's own token and CA: the small in-cluster client keeps
  // @kubernetes/client-node off the cold start (see function/in-cluster.ts).
  const client = createInClusterClient(api.settings)
  const source = createCachedServiceAccountSource(inClusterFetcher(client), {
    ...options,
    onClose: () => client.close(),
  })
  return { source, description: `GET ${client.server}` }
}

async function main(): Promise<void> {
  const dev = process.argv.includes('--dev')
  const env = dev
    ? { K_SERVICE: 'dev', HOST: '127.0.0.1', PORT: '8080', ...process.env }
    : process.env
  const loaded = loadConfig(env)
  if (!loaded.ok) {
    process.stderr.write(`irsa-webhook: invalid configuration\n${loaded.error}\n`)
    process.exit(1)
  }
  const config = loaded.value
  const log = pino({ level: config.LOG_LEVEL, base: { service: 'irsa-webhook' } })
  const metrics = createMetrics({ processMetrics: true })
  const { source, description } = await createSource(config, dev, metrics, log)
  let shuttingDown = false
  const app = createApp({
    ...appOptions(config),
    serviceAccounts: source,
    logger: log,
    metrics,
    ready: () => !shuttingDown && source.ready(),
    notReadyReason: () => (shuttingDown ? 'shutting down' : source.notReadyReason?.()),
  })
  const mode = serveMode(config)
  const tls =
    mode === 'https'
      ? {
          certPath: config.TLS_CERT_PATH,
          keyPath: config.TLS_KEY_PATH,
          reloadIntervalMs: config.TLS_RELOAD_INTERVAL_MS,
        }
      : undefined
  const running = await startServer({
    app,
    host: config.HOST,
    port: listenPort(config, mode),
    tls,
    logger: log,
  })
  log.info(
    {
      version: VERSION,
      port: running.port,
      mode,
      serviceAccounts: description,
      url: `${mode}://${config.HOST}:${running.port}`,
    },
    'listening',
  )

  const shutdown = async (signal: string) => {
    if (shuttingDown) return
    shuttingDown = true
    log.info({ signal, delayMs: config.SHUTDOWN_DELAY_MS }, 'shutting down')
    await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DELAY_MS))
    await running.close(config.SHUTDOWN_TIMEOUT_MS)
    await source.close()
    log.info({}, 'stopped')
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

main().catch((error: unknown) => {
  process.stderr.write(
    `irsa-webhook: failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  )
  process.exit(1)
})
