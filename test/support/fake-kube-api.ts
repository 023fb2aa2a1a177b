import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  alreadyExists,
  bookmarkEvent,
  conflict,
  dryRunProblem,
  failure,
  forbidden,
  invalid,
  isDryRun,
  JWKS_PATH,
  noSuchPath,
  notFound as notFoundStatus,
  OPENID_CONFIGURATION_PATH,
  type OpenIdMetadata,
  openIdMetadataReply,
  requestInfo,
  stripTypeMeta,
  tooManyRequests,
  type WireReply,
  withLabelSelector,
} from './kube-apiserver-wire.ts'
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

/** An answer (kube-apiserver-wire.ts builds the ones kube-apiserver would send). */
export type Reply = WireReply

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
  /** Serves the OIDC discovery endpoints from `source` (undefined: not installed, 404) with content negotiation. */
  serveOpenIdMetadata(source: () => OpenIdMetadata | undefined): void
  /** Answers matching requests with the authorizer's 403 for the kubeconfig's user ({@link FAKE_USER}). */
  forbid(path: RegExp | string, method?: string): void
  /** Drops every `forbid` rule. */
  clearForbidden(): void
  close(): Promise<void>
  /** The CA that signed the server certificate (TLS only), for plain HTTPS clients. */
  caPem: string | undefined
}

export interface FakeKubeApiOptions {
  tls?: boolean
  serviceAccounts?: object[]
  /** How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK (the watch cache's is a minute). */
  bookmarkIntervalMs?: number
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

/** The user that token authenticates as (named in 403 messages). */
const FAKE_USER = 'fake-user'

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
  return failure(code, reason, message, details as Record<string, unknown> | undefined)
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
  const json = reply.raw ?? JSON.stringify(reply.body)
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    ...reply.headers,
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

/** A missing object (`<resource>[.<group>] "<name>" not found`), or a path nothing serves. */
function notFoundFor(rec: RecordedRequest): Reply {
  const info = requestInfo(rec)
  if (RESOURCE_PATH.test(rec.path) && info.name !== '') return notFoundStatus(info)
  return noSuchPath()
}

/**
 * The body an injected status fault answers with: what kube-apiserver sends for that status on that request
 * (test/support/kube-apiserver-wire.ts) — 403 from the authorizer, 404 NotFound, 409 Conflict (AlreadyExists for a
 * create), 422 Invalid, 429 from the in-flight limiter as plain text; any other status a generic Status.
 */
function faultReply(status: number, rec: RecordedRequest): Reply {
  const info = requestInfo(rec)
  switch (status) {
    case 403:
      return forbidden(info, FAKE_USER)
    case 404:
      return info.resourceRequest && info.name !== '' ? notFoundStatus(info) : noSuchPath()
    case 409:
      return rec.method === 'POST' ? alreadyExists(info, bodyIdentity(rec).name) : conflict(info)
    case 422: {
      const { name, kind } = bodyIdentity(rec)
      return invalid(kind || info.resource, info.apiGroup, info.name || name, [
        {
          type: 'FieldValueInvalid',
          field: 'metadata',
          body: 'Invalid value: "fake-kube-api": injected fault',
        },
      ])
    }
    case 429:
      return tooManyRequests()
    default:
      return kubeStatus(status, `fake-kube-api: injected ${status} for ${rec.method} ${rec.path}`)
  }
}

/** `metadata.name` and `kind` of a request's JSON body ('' when absent). */
function bodyIdentity(rec: RecordedRequest): { name: string; kind: string } {
  try {
    const body = JSON.parse(rec.body) as { kind?: unknown; metadata?: { name?: unknown } }
    const name = body.metadata?.name
    return {
      name: typeof name === 'string' ? name : '',
      kind: typeof body.kind === 'string' ? body.kind : '',
    }
  } catch {
    return { name: '', kind: '' }
  }
}

/** The 5 characters the API server appends to a generateName (apiserver pkg/storage/names/generate.go). */
function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789'
  return Array.from(
    { length: 5 },
    () => alphabet[Math.floor(Math.random() * alphabet.length)],
  ).join('')
}

function listBody(kind: string, apiVersion: string, rv: number, items: KubeObject[]): object {
  return {
    kind,
    apiVersion,
    metadata: { resourceVersion: String(rv) },
    items: items.map((item) => stripTypeMeta(item)),
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
  readonly #forbidden: Array<{ path: RegExp | string; method: string | undefined }> = []
  readonly #bookmarkIntervalMs: number
  #faults: ActiveFault[] = []
  #events: WatchEvent[] = []
  #compactedRv = 0
  #rv = 0
  #closed: Promise<void> | undefined

  constructor(certs: Certificates | undefined, bookmarkIntervalMs = 60_000) {
    this.#certs = certs
    this.#bookmarkIntervalMs = bookmarkIntervalMs
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
    const refused = this.#refusal(rec)
    if (refused) {
      send(res, refused, truncate)
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
    send(res, faultReply(fault.status, rec), fault.destroy === 'mid-body')
    return false
  }

  /** The namespace of a ServiceAccount list path: undefined = all namespaces, null = not a list. */
  #listNamespace(path: string): string | undefined | null {
    if (SA_ALL.test(path)) return undefined
    return SA_NAMESPACED.exec(path)?.[1] ?? null
  }

  #resolve(rec: RecordedRequest): Reply {
    const created = rec.method === 'POST' ? this.#create(rec) : undefined
    if (created) return created
    const reply = this.#serviceAccountReply(rec) ?? this.#collectionReply(rec.path)
    if (!reply) return notFoundFor(rec)
    if (rec.method !== 'GET') {
      return kubeStatus(405, 'the server does not allow this method on the requested resource')
    }
    return withLabelSelector(reply, rec.query.get('labelSelector'))
  }

  #serviceAccountReply(rec: RecordedRequest): Reply | undefined {
    const { path } = rec
    const one = SA_ONE.exec(path)
    if (one) {
      const sa = this.#serviceAccounts.get(`${one[1]}/${one[2]}`)
      return sa ? { status: 200, body: sa } : notFoundStatus(requestInfo(rec))
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
    const initial = rec.query.get('sendInitialEvents') === 'true'
    const backlog = initial ? this.#backlog('', namespace) : this.#backlog(since, namespace)
    for (const [type, object] of backlog) writeEvent(res, type, object)
    if (rec.query.get('allowWatchBookmarks') === 'true') this.#bookmarks(res, seconds, initial)
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

  // ---- kube-apiserver behaviours beyond reads (test/support/kube-apiserver-wire.ts cites each source) ----
  // Not modelled (no caller needs them yet): fieldSelector, labelSelector on watches, PUT/PATCH/DELETE of stored
  // objects, and the random 30-60 min end the real server gives a watch sent without timeoutSeconds
  // (--min-request-timeout 1800 s, apiserver pkg/endpoints/handlers/get.go); here it stays open until closed.

  serveOpenIdMetadata(source: () => OpenIdMetadata | undefined): void {
    for (const path of [OPENID_CONFIGURATION_PATH, JWKS_PATH]) {
      this.route('GET', path, (rec) =>
        openIdMetadataReply({ ...rec, accept: rec.headers.accept }, source()),
      )
    }
  }

  forbid(path: RegExp | string, method?: string): void {
    this.#forbidden.push({ path, method: method?.toUpperCase() })
  }

  clearForbidden(): void {
    this.#forbidden.length = 0
  }

  /** Answers decided before any handler: RBAC denials (authorization filter), then invalid write options. */
  #refusal(rec: RecordedRequest): Reply | undefined {
    const denied = this.#forbidden.some(
      (rule) =>
        (rule.method === undefined || rule.method === rec.method) && matches(rule.path, rec.path),
    )
    if (denied) return forbidden(requestInfo(rec), FAKE_USER)
    return dryRunProblem(rec)
  }

  /**
   * POST to a collection the fake holds: 201 with the stored object; 409 AlreadyExists for a taken name; 422 when
   * the object has neither name nor generateName (apimachinery pkg/api/validation/objectmeta.go); with
   * `?dryRun=All` the answer is the same object but nothing is stored and it has no resourceVersion (apiserver
   * pkg/registry/generic/registry/dryrun.go returns the would-be object without writing it). Undefined when the path
   * is not a collection the fake knows.
   */
  #create(rec: RecordedRequest): Reply | undefined {
    const serviceAccounts = SA_NAMESPACED.exec(rec.path)
    const collection = this.#collections.get(rec.path)
    if (!serviceAccounts && !collection) return undefined
    const info = requestInfo(rec)
    let item: Partial<KubeObject>
    try {
      item = JSON.parse(rec.body) as Partial<KubeObject>
    } catch (error) {
      return kubeStatus(400, `error decoding request body: ${(error as Error).message}`)
    }
    const meta = (item.metadata ?? {}) as Partial<Metadata> & { generateName?: string }
    const name = meta.name ?? (meta.generateName ? `${meta.generateName}${randomSuffix()}` : '')
    if (name === '') {
      const kind = item.kind ?? info.resource
      return invalid(kind, info.apiGroup, '', [
        {
          type: 'FieldValueRequired',
          field: 'metadata.name',
          body: 'Required value: name or generateName is required',
        },
      ])
    }
    const exists = serviceAccounts
      ? this.#serviceAccounts.has(`${info.namespace}/${name}`)
      : collection?.has(name)
    if (exists) return alreadyExists(info, name)
    const object = { ...item, metadata: { ...meta, name } }
    if (isDryRun(rec)) {
      const metadata = {
        ...object.metadata,
        ...(info.namespace === '' ? {} : { namespace: info.namespace }),
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      }
      return { status: 201, body: { ...object, metadata } }
    }
    if (serviceAccounts) {
      this.setServiceAccount({
        ...object,
        metadata: { ...object.metadata, namespace: info.namespace },
      })
      return { status: 201, body: this.#serviceAccounts.get(`${info.namespace}/${name}`) }
    }
    this.putObject(rec.path, object)
    return { status: 201, body: this.#collections.get(rec.path)?.get(name) }
  }

  /**
   * BOOKMARKs for a watch that allows them (apiserver pkg/storage/cacher/cacher.go): one ending the initial events
   * when they were asked for (`sendInitialEvents=true`), then every `bookmarkIntervalMs` (the cache's minute), and
   * one 2 s before `timeoutSeconds` ends the watch.
   */
  #bookmarks(res: ServerResponse, timeoutSeconds: number, initial: boolean): void {
    const bookmark = (end = false) => {
      if (!res.writableEnded)
        res.write(`${JSON.stringify(bookmarkEvent('ServiceAccount', 'v1', this.#rv, end))}\n`)
    }
    if (initial) bookmark(true)
    const every = setInterval(bookmark, this.#bookmarkIntervalMs)
    const timers: NodeJS.Timeout[] = [every]
    if (timeoutSeconds > 2) timers.push(setTimeout(bookmark, timeoutSeconds * 1000 - 2000))
    res.once('close', () => {
      for (const timer of timers) clearTimeout(timer)
    })
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
  const api = new FakeKubeApiServer(certs, options.bookmarkIntervalMs)
  for (const sa of options.serviceAccounts ?? []) api.setServiceAccount(sa)
  await api.listen()
  return api
}
