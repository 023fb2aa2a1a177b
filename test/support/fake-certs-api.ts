/**
 * A loopback stand-in for the part of kube-apiserver `irsa-webhook certs` uses, until the tests run it against the
 * real control plane: Secrets in namespaces (GET, POST, PUT) and MutatingWebhookConfigurations (GET, PATCH with a
 * JSON patch), with kube-apiserver's optimistic concurrency — a POST of a taken name is 409 AlreadyExists, a PUT or
 * patch whose `metadata.resourceVersion` is not the stored one is 409 Conflict — and Events (POST, kept for
 * inspection). Rules given to `forbid` answer 403 as the authorizer would. Plain HTTP on 127.0.0.1, with a
 * kubeconfig pointing at it. Not modelled: anything else (404 for unknown paths), admission, validation.
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fastJsonPatch from 'fast-json-patch'

type Obj = Record<string, unknown> & {
  metadata: Record<string, unknown> & { name: string; resourceVersion?: string }
}

export interface FakeCertsApi {
  readonly kubeconfigPath: string
  /** Stored objects by path (`/api/v1/namespaces/NS/secrets/NAME`, `/apis/.../mutatingwebhookconfigurations/NAME`). */
  readonly objects: Map<string, Obj>
  readonly events: Obj[]
  /** Every write, in order: `METHOD path status`. */
  readonly writes: string[]
  put(path: string, obj: Record<string, unknown>): void
  /** Answers 403 to `method` on paths matching `path`. */
  forbid(method: string, path: RegExp): void
  /** Runs `hook` once, right before the next request matching method and path is handled (to race a writer). */
  before(method: string, path: RegExp, hook: () => void): void
  close(): Promise<void>
}

const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/'
const status = (code: number, reason: string, message: string) => ({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  code,
  reason,
  message,
})

export async function startFakeCertsApi(): Promise<FakeCertsApi> {
  const objects = new Map<string, Obj>()
  const events: Obj[] = []
  const writes: string[] = []
  const forbidden: { method: string; path: RegExp }[] = []
  const hooks: { method: string; path: RegExp; hook: () => void }[] = []
  let rv = 100
  const store = (path: string, obj: Obj): Obj => {
    rv += 1
    const stored = structuredClone(obj)
    stored.metadata.resourceVersion = String(rv)
    objects.set(path, stored)
    return stored
  }

  const conflict = (path: string): [number, unknown] => [
    409,
    status(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${path}: the object has been modified; please apply your changes to the latest version and try again`,
    ),
  ]
  const missing = (path: string): [number, unknown] => [
    404,
    status(404, 'NotFound', `${path} not found`),
  ]

  /** POST to a collection: an Event is kept; a Secret is created unless its name is taken. */
  function create(path: string, body: unknown): [number, unknown] | undefined {
    if (/^\/api\/v1\/namespaces\/[^/]+\/events$/.test(path)) {
      const event = structuredClone(body) as Obj
      event.metadata = { ...event.metadata, name: `event-${events.length}` }
      events.push(event)
      return [201, event]
    }
    if (!/^\/api\/v1\/namespaces\/[^/]+\/secrets$/.test(path)) return undefined
    const obj = body as Obj
    const at = `${path}/${obj.metadata.name}`
    if (objects.has(at))
      return [409, status(409, 'AlreadyExists', `secrets "${obj.metadata.name}" already exists`)]
    return [201, store(at, obj)]
  }

  /** PUT (a Secret) or PATCH (a JSON patch of a webhook configuration), at the stored resourceVersion only. */
  function update(method: string, path: string, body: unknown): [number, unknown] {
    const current = objects.get(path)
    if (!current) return missing(path)
    let next: Obj
    if (method === 'PUT') next = body as Obj
    else if (method === 'PATCH' && path.startsWith(MWC))
      next = fastJsonPatch.applyPatch(
        structuredClone(current),
        body as fastJsonPatch.Operation[],
        true,
        false,
      ).newDocument as Obj
    else return [405, status(405, 'MethodNotAllowed', `${method} ${path}`)]
    if (next.metadata.resourceVersion !== current.metadata.resourceVersion) return conflict(path)
    return [200, store(path, next)]
  }

  function handle(method: string, path: string, body: unknown): [number, unknown] {
    if (forbidden.some((f) => f.method === method && f.path.test(path)))
      return [403, status(403, 'Forbidden', `${method} ${path} is forbidden`)]
    if (method === 'POST') return create(path, body) ?? missing(path)
    if (method === 'GET') {
      const current = objects.get(path)
      return current ? [200, current] : missing(path)
    }
    return update(method, path, body)
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const method = req.method ?? 'GET'
      const path = new URL(req.url ?? '/', 'http://x').pathname
      const hook = hooks.findIndex((h) => h.method === method && h.path.test(path))
      if (hook >= 0) hooks.splice(hook, 1)[0]?.hook()
      const text = Buffer.concat(chunks).toString('utf8')
      const [code, reply] = handle(method, path, text === '' ? undefined : JSON.parse(text))
      if (method !== 'GET') writes.push(`${method} ${path} ${code}`)
      res.writeHead(code, { 'content-type': 'application/json' })
      res.end(JSON.stringify(reply))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const dir = mkdtempSync(join(tmpdir(), 'irsa-fake-certs-'))
  const kubeconfigPath = join(dir, 'kubeconfig')
  writeFileSync(
    kubeconfigPath,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'fake',
          cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true },
        },
      ],
      users: [{ name: 'fake', user: { token: 'fake' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    }),
  )
  return {
    kubeconfigPath,
    objects,
    events,
    writes,
    put: (path, obj) => store(path, obj as Obj),
    forbid: (method, path) => forbidden.push({ method, path }),
    before: (method, path, hook) => hooks.push({ method, path, hook }),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
