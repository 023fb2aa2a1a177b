import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestCertificates } from './tls.ts'

export interface RecordedRequest {
  method: string
  path: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
  body: string
}

export interface Fault {
  /** Default: any method. */
  method?: string
  /** A string matches the exact pathname. */
  path: RegExp | string
  /** Answer with this status and a Kubernetes Status body. */
  status?: number
  /** Wait before answering; gives up quietly if the client goes away. */
  delayMs?: number
  /** Kill the socket: before any header, or after the headers and half of the JSON body. */
  destroy?: 'before-headers' | 'mid-body'
  /** Apply this many times, then drop the fault. Default: until clearFaults(). */
  times?: number
}

export interface Reply {
  status: number
  body: unknown
}

export type RouteHandler = (req: RecordedRequest) => Reply | Promise<Reply>

export interface FakeKubeApi {
  url: string
  kubeconfigPath: string
  requests: RecordedRequest[]
  setServiceAccount(sa: object): void
  deleteServiceAccount(namespace: string, name: string): void
  putObject(collectionPath: string, obj: object): void
  route(method: string, path: RegExp | string, handler: RouteHandler): void
  fault(f: Fault): void
  clearFaults(): void
  close(): Promise<void>
  /** The CA that signed the server certificate (TLS only), for plain HTTPS clients. */
  caPem: string | undefined
}

export interface FakeKubeApiOptions {
  tls?: boolean
  serviceAccounts?: object[]
}

interface Metadata {
  name: string
  namespace?: string
  resourceVersion?: string
  uid?: string
  creationTimestamp?: string
  [key: string]: unknown
}

interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata: Metadata
  [key: string]: unknown
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED'

interface WatchEvent {
  rv: number
  type: EventType
  object: KubeObject
}

interface Watcher {
  res: ServerResponse
  namespace: string | undefined
  timer: NodeJS.Timeout | undefined
}

/** The bearer token every request must carry (it is the user's token in the kubeconfig). */
export const FAKE_TOKEN = 'fake-token'

/** How many watch events are kept for resuming watches; older resourceVersions get 410 Gone. */
const EVENT_LOG_LIMIT = 1000

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
}

/** A Kubernetes `Status` failure object, as the real apiserver sends it. */
export function kubeStatus(code: number, message: string, details?: object): Reply {
  const reason = REASONS[code] ?? (code >= 500 ? 'InternalError' : 'BadRequest')
  const body = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
  }
  return { status: code, body: { ...body, ...(details ? { details } : {}), code } }
}

function notFound(resource: string, name: string): Reply {
  return kubeStatus(404, `${resource} "${name}" not found`, { name, kind: resource })
}

const SA_ALL = /^\/api\/v1\/serviceaccounts$/
const SA_NAMESPACED = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts$/
const SA_ONE = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)$/

function matches(pattern: RegExp | string, path: string): boolean {
  return typeof pattern === 'string' ? pattern === path : pattern.test(path)
}

function isWatch(req: RecordedRequest): boolean {
  const watch = req.query.get('watch')
  return watch === 'true' || watch === '1'
}

function stripTypeMeta(obj: KubeObject): KubeObject {
  const { apiVersion: _a, kind: _k, ...rest } = obj
  return rest as KubeObject
}

function asKubeObject(obj: object): KubeObject {
  const copy = structuredClone(obj) as Partial<KubeObject>
  if (typeof copy.metadata?.name !== 'string') throw new Error('object needs metadata.name')
  return copy as KubeObject
}

function apiVersionOf(collectionPath: string): string | undefined {
  const core = /^\/api\/(v[^/]+)/.exec(collectionPath)
  if (core) return core[1]
  const grouped = /^\/apis\/([^/]+)\/([^/]+)/.exec(collectionPath)
  return grouped ? `${grouped[1]}/${grouped[2]}` : undefined
}

async function readRequest(req: IncomingMessage): Promise<RecordedRequest> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  const url = new URL(req.url ?? '/', 'http://fake')
  return {
    method: req.method ?? 'GET',
    path: url.pathname,
    query: url.searchParams,
    headers: req.headers,
    body: Buffer.concat(chunks).toString('utf8'),
  }
}

function send(res: ServerResponse, reply: Reply, truncate = false): void {
  const json = JSON.stringify(reply.body)
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
  })
  if (truncate) {
    res.write(json.slice(0, Math.floor(json.length / 2)), () => res.destroy())
    return
  }
  res.end(json)
}

/** Resolves true after `ms`, or false as soon as the client closes the connection. */
function waitUnlessClosed(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve(false)
    const onClose = () => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      res.off('close', onClose)
      resolve(true)
    }, ms)
    res.once('close', onClose)
  })
}

function kubeconfig(server: string, caPem: string | undefined): string {
  const trust = caPem
    ? `certificate-authority-data: ${Buffer.from(caPem).toString('base64')}`
    : 'insecure-skip-tls-verify: true'
  return `apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: ${server}
      ${trust}
users:
  - name: fake
    user:
      token: ${FAKE_TOKEN}
contexts:
  - name: fake
    context:
      cluster: fake
      user: fake
      namespace: default
current-context: fake
`
}

const RESOURCE_PATH = /^\/(?:api\/v1|apis\/[^/]+\/[^/]+)(?:\/namespaces\/[^/]+)?\/([^/]+)\/([^/]+)$/
const NAMESPACED_COLLECTION = /\/namespaces\/([^/]+)\/[^/]+$/

function notFoundFor(path: string): Reply {
  const resource = RESOURCE_PATH.exec(path)
  if (resource?.[1] && resource[2]) return notFound(resource[1], resource[2])
  return kubeStatus(404, 'the server could not find the requested resource', {})
}

function listBody(kind: string, apiVersion: string, rv: number, items: KubeObject[]): object {
  return {
    kind,
    apiVersion,
    metadata: { resourceVersion: String(rv) },
    items: items.map(stripTypeMeta),
  }
}

function writeEvent(res: ServerResponse, type: string, object: unknown): void {
  res.write(`${JSON.stringify({ type, object })}\n`)
}

function byResourceVersion(a: KubeObject, b: KubeObject): number {
  return Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion)
}

interface Route {
  method: string
  path: RegExp | string
  handler: RouteHandler
}

type ActiveFault = Fault & { remaining: number }
type Certificates = ReturnType<typeof createTestCertificates>

class FakeKubeApiServer implements FakeKubeApi {
  url = ''
  kubeconfigPath = ''
  caPem: string | undefined
  requests: RecordedRequest[] = []
  readonly #certs: Certificates | undefined
  readonly #dir = mkdtempSync(join(tmpdir(), 'fake-kube-api-'))
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  readonly #watchers = new Set<Watcher>()
  readonly #serviceAccounts = new Map<string, KubeObject>()
  readonly #collections = new Map<string, Map<string, KubeObject>>()
  readonly #routes: Route[] = []
  #faults: ActiveFault[] = []
  #events: WatchEvent[] = []
  #compactedRv = 0
  #rv = 0
  #closed: Promise<void> | undefined

  constructor(certs: Certificates | undefined) {
    this.#certs = certs
    this.caPem = certs?.caPem
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res).catch((error: unknown) => this.#fail(res, error))
    }
    this.#server = certs
      ? (createHttpsServer({ key: certs.keyPem, cert: certs.certPem }, onRequest) as Server)
      : createHttpServer(onRequest)
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    })
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(0, '127.0.0.1', () => resolve())
    })
    const address = this.#server.address()
    const port = typeof address === 'object' && address ? address.port : 0
    this.url = `${this.#certs ? 'https' : 'http'}://127.0.0.1:${port}`
    this.kubeconfigPath = join(this.#dir, 'kubeconfig.yaml')
    writeFileSync(this.kubeconfigPath, kubeconfig(this.url, this.caPem))
  }

  setServiceAccount(sa: object): void {
    const obj = asKubeObject(sa)
    const namespace = obj.metadata.namespace ?? 'default'
    const key = `${namespace}/${obj.metadata.name}`
    const previous = this.#serviceAccounts.get(key)
    const stored = this.#stamp(
      { ...obj, apiVersion: 'v1', kind: 'ServiceAccount' },
      namespace,
      previous,
    )
    this.#serviceAccounts.set(key, stored)
    this.#publish(previous ? 'MODIFIED' : 'ADDED', stored)
  }

  deleteServiceAccount(namespace: string, name: string): void {
    const key = `${namespace}/${name}`
    const previous = this.#serviceAccounts.get(key)
    if (!previous) return
    this.#serviceAccounts.delete(key)
    this.#publish('DELETED', this.#stamp(previous, namespace, previous))
  }

  putObject(collectionPath: string, obj: object): void {
    const namespace = NAMESPACED_COLLECTION.exec(collectionPath)?.[1]
    if (SA_NAMESPACED.test(collectionPath)) {
      const item = asKubeObject(obj)
      this.setServiceAccount({ ...item, metadata: { ...item.metadata, namespace } })
      return
    }
    const item = asKubeObject(obj)
    const apiVersion = item.apiVersion ?? apiVersionOf(collectionPath)
    const collection = this.#collections.get(collectionPath) ?? new Map<string, KubeObject>()
    this.#collections.set(collectionPath, collection)
    const previous = collection.get(item.metadata.name)
    const typed = apiVersion ? { ...item, apiVersion } : item
    collection.set(item.metadata.name, this.#stamp(typed, namespace, previous))
  }

  route(method: string, path: RegExp | string, handler: RouteHandler): void {
    this.#routes.push({ method: method.toUpperCase(), path, handler })
  }

  fault(f: Fault): void {
    this.#faults.push({ ...f, remaining: f.times ?? Number.POSITIVE_INFINITY })
  }

  clearFaults(): void {
    this.#faults = []
  }

  close(): Promise<void> {
    this.#closed ??= this.#shutdown()
    return this.#closed
  }

  async #shutdown(): Promise<void> {
    for (const watcher of this.#watchers) {
      clearTimeout(watcher.timer)
      watcher.res.end()
    }
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#server.closeAllConnections()
    for (const socket of this.#sockets) socket.destroy()
    await closed
    rmSync(this.#dir, { recursive: true, force: true })
    if (this.#certs) rmSync(this.#certs.dir, { recursive: true, force: true })
  }

  #stamp(obj: KubeObject, namespace: string | undefined, previous: KubeObject | undefined) {
    this.#rv += 1
    const meta = obj.metadata
    const metadata: Metadata = {
      ...meta,
      ...(namespace ? { namespace } : {}),
      uid: previous?.metadata.uid ?? meta.uid ?? randomUUID(),
      resourceVersion: String(this.#rv),
      creationTimestamp:
        previous?.metadata.creationTimestamp ??
        meta.creationTimestamp ??
        new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    }
    return { ...obj, metadata }
  }

  #publish(type: EventType, object: KubeObject): void {
    this.#events.push({ rv: this.#rv, type, object })
    if (this.#events.length > EVENT_LOG_LIMIT) this.#compactedRv = this.#events.shift()?.rv ?? 0
    for (const watcher of this.#watchers) {
      const ns = watcher.namespace
      if (ns === undefined || ns === object.metadata.namespace)
        writeEvent(watcher.res, type, object)
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.#closed) {
      res.destroy()
      return
    }
    const rec = await readRequest(req)
    this.requests.push(rec)
    const fault = this.#takeFault(rec)
    if (fault && !(await this.#applyFault(fault, rec, res))) return
    const truncate = fault?.destroy === 'mid-body'
    if (rec.headers.authorization !== `Bearer ${FAKE_TOKEN}`) {
      send(res, kubeStatus(401, 'Unauthorized'), truncate)
      return
    }
    const route = this.#routes.find((r) => r.method === rec.method && matches(r.path, rec.path))
    if (route) {
      send(res, await route.handler(rec), truncate)
      return
    }
    const namespace = this.#listNamespace(rec.path)
    if (rec.method === 'GET' && isWatch(rec) && namespace !== null) {
      this.#watch(rec, res, namespace, truncate)
      return
    }
    send(res, this.#resolve(rec), truncate)
  }

  #fail(res: ServerResponse, error: unknown): void {
    if (res.headersSent || res.destroyed) {
      res.destroy()
      return
    }
    send(res, kubeStatus(500, `fake-kube-api: ${String(error)}`))
  }

  #takeFault(rec: RecordedRequest): ActiveFault | undefined {
    const fault = this.#faults.find(
      (f) => (!f.method || f.method.toUpperCase() === rec.method) && matches(f.path, rec.path),
    )
    if (!fault) return undefined
    fault.remaining -= 1
    if (fault.remaining <= 0) this.#faults = this.#faults.filter((f) => f !== fault)
    return fault
  }

  /** Returns true when the request should go on to be answered normally. */
  async #applyFault(fault: Fault, rec: RecordedRequest, res: ServerResponse): Promise<boolean> {
    if (fault.delayMs !== undefined && !(await waitUnlessClosed(res, fault.delayMs))) return false
    if (this.#closed || fault.destroy === 'before-headers') {
      res.destroy()
      return false
    }
    if (fault.status === undefined) return true
    const message = `fake-kube-api: injected ${fault.status} for ${rec.method} ${rec.path}`
    send(res, kubeStatus(fault.status, message), fault.destroy === 'mid-body')
    return false
  }

  /** The namespace of a ServiceAccount list path: undefined = all namespaces, null = not a list. */
  #listNamespace(path: string): string | undefined | null {
    if (SA_ALL.test(path)) return undefined
    return SA_NAMESPACED.exec(path)?.[1] ?? null
  }

  #resolve(rec: RecordedRequest): Reply {
    const reply = this.#serviceAccountReply(rec.path) ?? this.#collectionReply(rec.path)
    if (!reply) return notFoundFor(rec.path)
    if (rec.method !== 'GET') {
      return kubeStatus(405, 'the server does not allow this method on the requested resource')
    }
    return reply
  }

  #serviceAccountReply(path: string): Reply | undefined {
    const one = SA_ONE.exec(path)
    if (one) {
      const sa = this.#serviceAccounts.get(`${one[1]}/${one[2]}`)
      return sa ? { status: 200, body: sa } : notFound('serviceaccounts', one[2] ?? '')
    }
    const namespace = this.#listNamespace(path)
    if (namespace === null) return undefined
    const items = this.#currentServiceAccounts(namespace)
    return { status: 200, body: listBody('ServiceAccountList', 'v1', this.#rv, items) }
  }

  #collectionReply(path: string): Reply | undefined {
    const collection = this.#collections.get(path)
    if (collection) {
      const items = [...collection.values()].sort(byResourceVersion)
      const first = items[0]
      const kind = first?.kind ? `${first.kind}List` : 'List'
      return { status: 200, body: listBody(kind, apiVersionOf(path) ?? 'v1', this.#rv, items) }
    }
    const slash = path.lastIndexOf('/')
    const obj = this.#collections.get(path.slice(0, slash))?.get(path.slice(slash + 1))
    return obj ? { status: 200, body: obj } : undefined
  }

  #currentServiceAccounts(namespace: string | undefined): KubeObject[] {
    return [...this.#serviceAccounts.values()]
      .filter((sa) => namespace === undefined || sa.metadata.namespace === namespace)
      .sort(byResourceVersion)
  }

  #watch(
    rec: RecordedRequest,
    res: ServerResponse,
    namespace: string | undefined,
    truncate: boolean,
  ) {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' })
    res.flushHeaders()
    if (truncate) {
      res.write('{"type":"ADDED","object":{"metadata":{"na', () => res.destroy())
      return
    }
    const since = rec.query.get('resourceVersion') ?? ''
    if (/^[1-9]\d*$/.test(since) && Number(since) < this.#compactedRv) {
      const gone = kubeStatus(410, `too old resource version: ${since} (${this.#compactedRv})`)
      writeEvent(res, 'ERROR', gone.body)
      res.end()
      return
    }
    const watcher: Watcher = { res, namespace, timer: undefined }
    this.#watchers.add(watcher)
    res.once('close', () => {
      clearTimeout(watcher.timer)
      this.#watchers.delete(watcher)
    })
    const seconds = Number(rec.query.get('timeoutSeconds') ?? '0')
    if (seconds > 0) watcher.timer = setTimeout(() => res.end(), seconds * 1000)
    for (const [type, object] of this.#backlog(since, namespace)) writeEvent(res, type, object)
  }

  /** Events a new watch starts with: newer than `since`, or the whole current state as ADDED. */
  #backlog(since: string, namespace: string | undefined): Array<[string, KubeObject]> {
    if (!/^[1-9]\d*$/.test(since)) {
      return this.#currentServiceAccounts(namespace).map((sa) => ['ADDED', sa])
    }
    return this.#events
      .filter((e) => e.rv > Number(since))
      .filter((e) => namespace === undefined || e.object.metadata.namespace === namespace)
      .map((e) => [e.type, e.object])
  }
}

/**
 * Start a loopback fake kube-apiserver on 127.0.0.1 (random port), with a kubeconfig that
 * @kubernetes/client-node's KubeConfig.loadFromFile accepts (token `fake-token`; with `tls` the
 * server uses a throwaway CA whose certificate is in the kubeconfig and in `caPem`).
 */
export async function startFakeKubeApi(options: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const certs = options.tls
    ? createTestCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })
    : undefined
  const api = new FakeKubeApiServer(certs)
  for (const sa of options.serviceAccounts ?? []) api.setServiceAccount(sa)
  await api.listen()
  return api
}
