/**
 * A small authenticated client for raw API paths, from a kubeconfig. `KubeConfig.applyToHTTPSOptions` supplies the
 * credentials (token, exec plugin, client certificate), the CA or insecure-skip-tls-verify, and the agent (proxy
 * or plain HTTP); the request itself is a plain node:http(s) request, so any path works — discovery documents,
 * CRDs, `?dryRun=All` — without a generated API class per resource.
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https'
import { KubeConfig } from '@kubernetes/client-node'

export interface KubeResponse {
  readonly status: number
  /** Parsed JSON, or undefined when the body is not JSON. */
  readonly body: unknown
  readonly text: string
  readonly headers: IncomingHttpHeaders
}

/**
 * What a request asks for. The API server negotiates on `Accept` per endpoint (go-restful `Route.matchesAccept`:
 * an exact media type or a wildcard, q-values ignored) and answers 406 when none matches, so each caller names what
 * its endpoint serves: resources and Status bodies are `application/json`; `/openid/v1/jwks` is only
 * `application/jwk-set+json` (kubernetes pkg/routes/openidmetadata.go).
 */
export const ACCEPT_JSON = 'application/json'

export interface KubeClient {
  /** The API server URL from the kubeconfig. */
  readonly server: string
  /** `contentType` of the body: application/json unless given (a PATCH names its patch type). */
  request(
    method: string,
    path: string,
    body?: unknown,
    accept?: string,
    contentType?: string,
  ): Promise<KubeResponse>
  get(path: string, accept?: string): Promise<KubeResponse>
}

/** Loads `path`, else $KUBECONFIG / ~/.kube/config / in-cluster, like kubectl. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const config = new KubeConfig()
  if (path === undefined) config.loadFromDefault()
  else config.loadFromFile(path)
  if (config.getCurrentCluster() === null) {
    throw new Error(`kubeconfig ${path ?? '(default)'} has no current cluster`)
  }
  return config
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function send(url: URL, options: RequestOptions, payload: string | undefined) {
  const requestFn = url.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<KubeResponse>((resolve, reject) => {
    const req = requestFn(url, options, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, body: parseJson(text), text, headers: res.headers })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * client-node's agent (one per cluster) does not keep connections alive: a command that sends many requests (the
 * audit's owner lookups, evictions) would open a connection, and a TLS handshake, per request. The same TLS
 * settings on a keep-alive agent, made once per client; a proxy agent is kept as it is.
 */
function keepAliveAgent(url: URL, given: RequestOptions['agent']): RequestOptions['agent'] {
  if (given instanceof HttpsAgent && given.constructor === HttpsAgent) {
    return url.protocol === 'https:'
      ? new HttpsAgent({ ...given.options, keepAlive: true })
      : new HttpAgent({ keepAlive: true })
  }
  return given
}

/** A client bound to the kubeconfig's current context. Every request gives up after `timeoutMs`. */
export function createKubeClient(config: KubeConfig, timeoutMs = 15_000): KubeClient {
  const server = config.getCurrentCluster()?.server ?? ''
  const base = new URL(server)
  const prefix = base.pathname.replace(/\/$/, '')
  let agent: RequestOptions['agent'] | undefined
  const client: KubeClient = {
    server,
    async request(method, path, body, accept = ACCEPT_JSON, contentType = 'application/json') {
      const options: RequestOptions = {}
      await config.applyToHTTPSOptions(options)
      agent ??= keepAliveAgent(base, options.agent)
      options.agent = agent
      const payload = body === undefined ? undefined : JSON.stringify(body)
      const headers: Record<string, string> = { accept }
      if (payload !== undefined) headers['content-type'] = contentType
      options.method = method
      options.headers = { ...(options.headers as Record<string, string>), ...headers }
      options.signal = AbortSignal.timeout(timeoutMs)
      return send(new URL(`${base.origin}${prefix}${path}`), options, payload)
    },
    get: (path, accept) => client.request('GET', path, undefined, accept),
  }
  return client
}

/** The `message` of a Kubernetes Status body (else the start of the text), on one line, after the HTTP status. */
export function statusMessage(response: KubeResponse): string {
  const body = response.body as { message?: unknown } | undefined
  const raw = typeof body?.message === 'string' ? body.message : response.text.slice(0, 200)
  const message = raw.replace(/\s+/g, ' ').trim()
  return `HTTP ${response.status}${message === '' ? '' : `: ${message}`}`
}

/** GETs an object: `found` with its body, `missing` for 404, `error` with the message for any other failure. */
export async function getObject(
  context: { readonly client: KubeClient },
  path: string,
): Promise<{ found: Record<string, unknown> } | { missing: true } | { error: string }> {
  let response: KubeResponse
  try {
    response = await context.client.get(path)
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) }
  }
  if (response.status === 404) return { missing: true }
  if (response.status !== 200) return { error: statusMessage(response) }
  return { found: (response.body ?? {}) as Record<string, unknown> }
}
