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
import { pino } from 'pino'
import { createApp, type Logger } from './function/app.ts'
import { appOptions, type Config, listenPort, loadConfig, serveMode } from './function/config.ts'
import { createInClusterClient } from './function/in-cluster.ts'
import { createMetrics, type Metrics } from './function/metrics.ts'
import { startServer } from './function/server.ts'
import {
  createCachedServiceAccountSource,
  createStaticServiceAccountSource,
  inClusterFetcher,
  type ManagedServiceAccountSource,
} from './function/service-accounts.ts'
import { VERSION } from './function/version.ts'

const DEV_SERVICE_ACCOUNTS = new URL('./examples/service-accounts.yaml', import.meta.url)

async function createSource(
  config: Config,
  dev: boolean,
  metrics: Metrics,
  log: Logger,
): Promise<{ source: ManagedServiceAccountSource; description: string }> {
  const file =
    config.SERVICE_ACCOUNTS_FILE ?? (dev && !config.KUBECONFIG ? DEV_SERVICE_ACCOUNTS : undefined)
  if (file !== undefined) {
    const { parseYamlDocuments } = await import('./function/yaml.ts')
    const source = createStaticServiceAccountSource(parseYamlDocuments(readFileSync(file, 'utf8')))
    return { source, description: `file ${file instanceof URL ? file.pathname : file}` }
  }
  const options = {
    ttlMs: config.SA_CACHE_TTL_SECONDS * 1000,
    timeoutMs: config.LOOKUP_TIMEOUT_MS,
    metrics,
  }
  // In a cluster, without a kubeconfig, `get` mode needs only the pod's own token and CA: the small in-cluster
  // client keeps @kubernetes/client-node off the cold start (see function/in-cluster.ts).
  const host = config.KUBERNETES_SERVICE_HOST
  if (config.SA_LOOKUP_MODE === 'get' && host !== undefined && config.KUBECONFIG === undefined) {
    const client = createInClusterClient({
      host,
      port: config.KUBERNETES_SERVICE_PORT,
      serviceAccountDir: config.KUBE_SERVICEACCOUNT_DIR,
    })
    const source = createCachedServiceAccountSource(inClusterFetcher(client), {
      ...options,
      onClose: () => client.close(),
    })
    return { source, description: `GET ${client.server}` }
  }
  const kube = await import('./function/kube-client-node.ts')
  const { kubeConfig, server } = kube.loadKubeConfig()
  if (config.SA_LOOKUP_MODE === 'get') {
    return {
      source: kube.createApiServiceAccountSource(kubeConfig, options),
      description: `GET ${server}`,
    }
  }
  const source = kube.createWatchServiceAccountSource(kubeConfig, {
    ...options,
    onError: (error: unknown) =>
      log.warn({ error: String(error) }, 'ServiceAccount informer error; restarting'),
  })
  // Serve at once (misses fall back to GET); /readyz waits for the first LIST.
  source
    .start()
    .catch((error: unknown) => log.warn({ error: String(error) }, 'informer start failed'))
  return { source, description: `watch ${server}` }
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
