/**
 * A minimal in-cluster Kubernetes API client for the one call the webhook makes on its hot path: a GET with the
 * pod's own ServiceAccount credentials, read the way client-node's `loadFromCluster` reads them
 * (`KUBERNETES_SERVICE_HOST`/`_PORT`, `<dir>/token`, `<dir>/ca.crt`).
 *
 * Why not client-node here: with it (a kubeconfig) the bench's cold start is ~120-155 ms longer (docs/performance.md,
 * the KUBECONFIG rows), which a scale-to-zero webhook would pay on every cold start. client-node stays the client for kubeconfigs (local
 * development, exec/OIDC auth plugins) and for watch mode (`kube-client-node.ts`, loaded only then).
 * @module
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { join } from 'node:path'

/**
 * Where a pod finds its API server and its own credentials. Every in-cluster client is built from this one object
 * (`in-cluster.ts` for `get` mode, client-node's KubeConfig for `watch` mode), so the variables mean the same in
 * every lookup mode.
 */
export interface InClusterSettings {
  /** `KUBERNETES_SERVICE_HOST`. */
  readonly host: string
  /** `KUBERNETES_SERVICE_PORT`. */
  readonly port: number
  /** `<KUBE_SERVICEACCOUNT_DIR>/token`, re-read as it rotates. */
  readonly tokenFile: string
  /** `<KUBE_SERVICEACCOUNT_DIR>/ca.crt`, which must sign the API server's certificate. */
  readonly caFile: string
  /** `<KUBE_SERVICEACCOUNT_DIR>/namespace`, the pod's namespace (optional). */
  readonly namespaceFile: string
}

/** The settings for a ServiceAccount directory (`token`, `ca.crt`, `namespace` in it, as Kubernetes mounts them). */
export function inClusterSettings(
  host: string,
  port: number,
  serviceAccountDir: string,
): InClusterSettings {
  return {
    host,
    port,
    tokenFile: join(serviceAccountDir, 'token'),
    caFile: join(serviceAccountDir, 'ca.crt'),
    namespaceFile: join(serviceAccountDir, 'namespace'),
  }
}

/** `https://host:port` (IPv6 in brackets): always HTTPS, verified with `caFile`. */
export function inClusterServer(settings: Pick<InClusterSettings, 'host' | 'port'>): string {
  const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host
  return `https://${host}:${settings.port}`
}

/**
 * Why these settings cannot work (a missing or unreadable token or CA file), or undefined when both can be read.
 * Read once at start, so that a pod without a mounted token says so at once rather than on every request.
 */
export function inClusterProblem(settings: InClusterSettings): string | undefined {
  for (const file of [settings.tokenFile, settings.caFile]) {
    try {
      readFileSync(file)
    } catch (error) {
      return `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`
    }
  }
  return undefined
}

export interface InClusterOptions extends InClusterSettings {
  /** Bound tokens rotate: the token file is re-read when older than this (client-node: 60 s). */
  readonly tokenMaxAgeMs?: number
  readonly now?: () => number
}

export interface KubeResponse {
  readonly status: number
  readonly body: string
}

export interface InClusterClient {
  /** `https://host:port`, for logs. */
  readonly server: string
  /** GETs `path`; rejects on network errors and when `signal` aborts. */
  get(path: string, signal: AbortSignal): Promise<KubeResponse>
  close(): void
}

const MAX_BODY_BYTES = 1024 * 1024

/** Reads the CA once and the token on demand; throws at creation if either file is missing. */
export function createInClusterClient(options: InClusterOptions): InClusterClient {
  const now = options.now ?? Date.now
  const maxAge = options.tokenMaxAgeMs ?? 60_000
  const ca = readFileSync(options.caFile)
  const readToken = () => readFileSync(options.tokenFile, 'utf8').trim()
  let token = readToken()
  let tokenReadAt = now()
  const currentToken = () => {
    if (now() - tokenReadAt >= maxAge) {
      try {
        token = readToken()
      } catch {
        // Keep the last token if the file is mid-rotation; the API answers 401 if it has expired.
      }
      tokenReadAt = now()
    }
    return token
  }
  const agent = new Agent({ keepAlive: true, ca, maxSockets: 32 })
  return {
    server: inClusterServer(options),
    close: () => agent.destroy(),
    get(path, signal) {
      return new Promise((resolve, reject) => {
        const req = request(
          {
            host: options.host,
            port: options.port,
            path,
            method: 'GET',
            agent,
            signal,
            headers: { authorization: `Bearer ${currentToken()}`, accept: 'application/json' },
          },
          (res) => {
            const chunks: Buffer[] = []
            let size = 0
            res.on('data', (chunk: Buffer) => {
              size += chunk.length
              if (size > MAX_BODY_BYTES) req.destroy(new Error('response too large'))
              else chunks.push(chunk)
            })
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: Buffer.concat(chunks).toString('utf8'),
              }),
            )
            res.on('error', reject)
          },
        )
        req.on('error', reject)
        req.end()
      })
    },
  }
}
