/**
 * A tiny loopback kube-apiserver for benches: it answers only `GET /api/v1/namespaces/<ns>/serviceaccounts/<name>`
 * (bearer token checked, 404 Status otherwise) and `GET /stats` (how many ServiceAccount GETs it served). Unlike
 * test/support/fake-kube-api.ts it keeps no request log, so memory stays flat under load.
 *
 * Run as a child (`node test/bench/fake-sa-api.ts`): it prints one JSON line
 * `{"msg":"listening","port":…,"kubeconfig":…}` and serves the recorded `irsa-sa` ServiceAccount.
 * @module
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serviceAccount } from './payloads.ts'

export const BENCH_TOKEN = 'bench-token'
const SA_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/?]+)/

function kubeconfig(server: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `  - name: bench\n    cluster:\n      server: ${server}\n      insecure-skip-tls-verify: true`,
    'users:',
    `  - name: bench\n    user:\n      token: ${BENCH_TOKEN}`,
    'contexts:',
    '  - name: bench\n    context:\n      cluster: bench\n      user: bench',
    'current-context: bench',
    '',
  ].join('\n')
}

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

/** Starts the fake on 127.0.0.1:0 with these ServiceAccounts; returns its URL and a kubeconfig path. */
export async function startFakeSaApi(accounts: readonly object[]) {
  const byKey = new Map<string, string>()
  for (const sa of accounts as { metadata: { namespace: string; name: string } }[]) {
    byKey.set(`${sa.metadata.namespace}/${sa.metadata.name}`, JSON.stringify(sa))
  }
  let gets = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    if (req.url === '/stats') return reply(res, 200, JSON.stringify({ gets }))
    const match = SA_PATH.exec(req.url ?? '')
    if (req.headers.authorization !== `Bearer ${BENCH_TOKEN}`) return reply(res, 401, '{}')
    if (req.method !== 'GET' || match === null) return reply(res, 404, notFound(req.url ?? ''))
    gets += 1
    const body = byKey.get(`${match[1]}/${match[2]}`)
    return body === undefined ? reply(res, 404, notFound(match[2] ?? '')) : reply(res, 200, body)
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const kubeconfigPath = join(mkdtempSync(join(tmpdir(), 'irsa-bench-')), 'kubeconfig.yaml')
  writeFileSync(kubeconfigPath, kubeconfig(url))
  return {
    url,
    kubeconfigPath,
    gets: () => gets,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

if (import.meta.main) {
  const api = await startFakeSaApi([serviceAccount()])
  const port = new URL(api.url).port
  process.stdout.write(
    `${JSON.stringify({ msg: 'listening', port: Number(port), kubeconfig: api.kubeconfigPath })}\n`,
  )
}
