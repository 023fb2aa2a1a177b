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

// Imported by api-env.ts for BENCH_TOKEN; serves only when run as the child.
if (import.meta.main) {
  const sa = serviceAccount()
  const body = JSON.stringify(sa)
  let gets = 0

  const server = createServer(
    {
      cert: readFileSync(process.env['TLS_CERT_PATH'] ?? 'tls.crt'),
      key: readFileSync(process.env['TLS_KEY_PATH'] ?? 'tls.key'),
    },
    (req: IncomingMessage, res: ServerResponse) => {
      req.resume()
      if (req.url === '/stats') return reply(res, 200, JSON.stringify({ gets }))
      const match = SA_PATH.exec(req.url ?? '')
      if (req.headers.authorization !== `Bearer ${BENCH_TOKEN}`) return reply(res, 401, '{}')
      if (req.method !== 'GET' || match === null) return reply(res, 404, notFound(req.url ?? ''))
      gets += 1
      const found = match[1] === sa.metadata.namespace && match[2] === sa.metadata.name
      return found ? reply(res, 200, body) : reply(res, 404, notFound(match[2] ?? ''))
    },
  )
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    process.stdout.write(`${JSON.stringify({ msg: 'listening', port })}\n`)
  })
}
