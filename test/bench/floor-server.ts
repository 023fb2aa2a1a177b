/**
 * The floor: the least a Node webhook can do for the same answer, with no framework. It reads the body, JSON.parse,
 * GETs the ServiceAccount over HTTPS with `node:https` (a keep-alive agent trusting the service account's
 * `ca.crt`, `Authorization: Bearer <token>`), with the same cache rules as ours (kept `SA_CACHE_TTL_SECONDS`,
 * 0 = a GET per review, concurrent misses share one GET), plans the patch, base64, JSON.stringify.
 *
 * The patch comes from the real pure planner (`function/mutate-pod.ts`, and `isValidRole` from identity.ts):
 * the answer is then byte-for-byte the same as ours (the bench checks it), so the gap measures only what the
 * server adds around the planner: Hono, zod validation, pino, client-node, prom-client.
 *
 * Env: PORT (default 0), K_SERVICE (plain HTTP) or TLS_CERT_PATH/TLS_KEY_PATH (HTTPS), and the in-cluster API
 * access ours uses: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT, KUBE_SERVICEACCOUNT_DIR (`token`, `ca.crt`).
 * Prints `{"msg":"listening","port":…}` on stdout.
 * @module
 */
import { readFileSync } from 'node:fs'
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http'
import { Agent, createServer as createHttps, request } from 'node:https'
import type { AddressInfo } from 'node:net'
import { isValidRole } from '../../function/identity.ts'
import type { Pod } from '../../function/kube-objects.ts'
import { planPodMutation } from '../../function/mutate-pod.ts'
import { ANNOTATIONS } from '../../function/names.ts'
import { benchIdentity } from './payloads.ts'

const env = process.env
const saDir = env['KUBE_SERVICEACCOUNT_DIR'] ?? '/var/run/secrets/kubernetes.io/serviceaccount'
const apiHost = env['KUBERNETES_SERVICE_HOST'] ?? '127.0.0.1'
const apiPort = Number(env['KUBERNETES_SERVICE_PORT'] ?? '443')
const auth = `Bearer ${readFileSync(`${saDir}/token`, 'utf8').trim()}`
const agent = new Agent({ keepAlive: true, ca: readFileSync(`${saDir}/ca.crt`) })
const ttlMs = Number(env['SA_CACHE_TTL_SECONDS'] ?? '10') * 1000
const cache = new Map<string, { expires: number; role: string | undefined }>()

const inFlight = new Map<string, Promise<string | undefined>>()

function fetchRole(namespace: string, name: string): Promise<string | undefined> {
  const path = `/api/v1/namespaces/${namespace}/serviceaccounts/${name}`
  const headers = { authorization: auth, accept: 'application/json' }
  return new Promise((resolve, reject) => {
    const req = request(
      { host: apiHost, port: apiPort, path, agent, headers, timeout: 3000 },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', reject)
        res.on('end', () => {
          if (res.statusCode !== 200)
            return reject(new Error(`ServiceAccount GET: ${res.statusCode}`))
          const sa = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            metadata?: { annotations?: Record<string, string> }
          }
          resolve(sa.metadata?.annotations?.[ANNOTATIONS.role])
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error('ServiceAccount GET timed out')))
    req.on('error', reject)
    req.end()
  })
}

/** Cached role of a ServiceAccount; like ours, concurrent misses for one ServiceAccount share one GET. */
async function roleOf(namespace: string, name: string): Promise<string | undefined> {
  const key = `${namespace}/${name}`
  const hit = cache.get(key)
  if (hit !== undefined && hit.expires > Date.now()) return hit.role
  let pending = inFlight.get(key)
  if (pending === undefined) {
    pending = fetchRole(namespace, name).finally(() => inFlight.delete(key))
    inFlight.set(key, pending)
  }
  const role = await pending
  if (ttlMs > 0) cache.set(key, { expires: Date.now() + ttlMs, role })
  return role
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  })
  res.end(body)
}

async function review(raw: string): Promise<string> {
  const review = JSON.parse(raw)
  const request = review.request
  const pod = request.object as Pod
  const role = await roleOf(request.namespace, pod.spec.serviceAccountName || 'default')
  const response: Record<string, unknown> = { uid: request.uid, allowed: true }
  if (role !== undefined && isValidRole(role)) {
    const { patch } = planPodMutation(pod, benchIdentity(role))
    if (patch.length > 0) {
      response['patchType'] = 'JSONPatch'
      response['patch'] = Buffer.from(JSON.stringify(patch)).toString('base64')
    }
  }
  return JSON.stringify({ apiVersion: review.apiVersion, kind: review.kind, response })
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    review(Buffer.concat(chunks).toString('utf8')).then(
      (body) => send(res, 200, body),
      (error: Error) => send(res, 500, JSON.stringify({ error: error.message })),
    )
  })
}

const tls = env['K_SERVICE'] === undefined
const server = tls
  ? createHttps(
      {
        cert: readFileSync(env['TLS_CERT_PATH'] ?? 'tls.crt'),
        key: readFileSync(env['TLS_KEY_PATH'] ?? 'tls.key'),
      },
      handle,
    )
  : createHttp(handle)
server.keepAliveTimeout = 90_000
server.listen(Number(env['PORT'] ?? '0'), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
