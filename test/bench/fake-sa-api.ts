/**
 * A tiny loopback kube-apiserver for benches, over HTTPS like a real one: it answers only
 * `GET /api/v1/namespaces/<ns>/serviceaccounts/<name>` (bearer token checked, 404 Status otherwise) and
 * `GET /stats` (how many ServiceAccount GETs it served). Unlike test/support/fake-kube-api.ts it keeps no request
 * log, so memory stays flat under load.
 *
 * Run as a child (`node test/bench/fake-sa-api.ts`) with TLS_CERT_PATH/TLS_KEY_PATH (a serving certificate for
 * IP 127.0.0.1): it prints one JSON line `{"msg":"listening","port":…}` and serves the recorded `irsa-sa`
 * ServiceAccount. The bench writes the service-account directory (token, ca.crt) and the kubeconfig around it.
 * @module
 */
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { serviceAccount } from './payloads.ts'

export const BENCH_TOKEN = 'bench-token'
const SA_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/?]+)/

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  })
  res.end(body)
}

function notFound(what: string): string {
  const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound' }
  return JSON.stringify({ ...status, metadata: {}, message: `${what} not found`, code: 404 })
}

export interface FakeSaApiOptions {
  readonly accounts: readonly object[]
  /** PEM serving certificate (SAN IP 127.0.0.1) and its key. */
  readonly cert: string | Buffer
  readonly key: string | Buffer
}

/** Starts the fake on https://127.0.0.1:0 with these ServiceAccounts. */
export async function startFakeSaApi(options: FakeSaApiOptions) {
  const byKey = new Map<string, string>()
  for (const sa of options.accounts as { metadata: { namespace: string; name: string } }[]) {
    byKey.set(`${sa.metadata.namespace}/${sa.metadata.name}`, JSON.stringify(sa))
  }
  let gets = 0
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    if (req.url === '/stats') return reply(res, 200, JSON.stringify({ gets }))
    const match = SA_PATH.exec(req.url ?? '')
    if (req.headers.authorization !== `Bearer ${BENCH_TOKEN}`) return reply(res, 401, '{}')
    if (req.method !== 'GET' || match === null) return reply(res, 404, notFound(req.url ?? ''))
    gets += 1
    const body = byKey.get(`${match[1]}/${match[2]}`)
    return body === undefined ? reply(res, 404, notFound(match[2] ?? '')) : reply(res, 200, body)
  }
  const server = createServer({ cert: options.cert, key: options.key }, handle)
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    gets: () => gets,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

if (import.meta.main) {
  const api = await startFakeSaApi({
    accounts: [serviceAccount()],
    cert: readFileSync(process.env['TLS_CERT_PATH'] ?? 'tls.crt'),
    key: readFileSync(process.env['TLS_KEY_PATH'] ?? 'tls.key'),
  })
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: api.port })}\n`)
}
