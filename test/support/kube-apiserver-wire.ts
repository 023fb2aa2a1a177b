/**
 * What kube-apiserver puts on the wire for the calls this project makes, as pure functions the loopback fake
 * (fake-kube-api.ts) answers with. Each behaviour names the Kubernetes source it follows; paths are in the
 * kubernetes/kubernetes repository (staging/src/k8s.io/… is the published k8s.io/… module) unless a repository is
 * named.
 * @module
 */

/** An answer: a JSON body, or `raw` text written as is; `headers` add to (or replace) the JSON content type. */
export interface WireReply {
  status: number
  body: unknown
  headers?: Record<string, string>
  raw?: string
}

/** The request as the fake records it (only what these rules read). */
interface WireRequest {
  method: string
  path: string
  query: URLSearchParams
}

/**
 * A request's attributes, as the API server's RequestInfoFactory derives them before authorization
 * (apiserver pkg/endpoints/request/requestinfo.go): API group and version, namespace, resource, subresource, name,
 * and the verb (get/list/watch for GET, create, update, patch, delete/deletecollection); any path outside /api and
 * /apis is a non-resource request whose verb is the lower-cased method.
 */
export interface RequestInfo {
  readonly resourceRequest: boolean
  readonly verb: string
  readonly path: string
  readonly apiGroup: string
  readonly apiVersion: string
  readonly namespace: string
  readonly resource: string
  readonly subresource: string
  readonly name: string
}

const WRITE_VERBS: Record<string, string> = {
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
}

function resourceVerb(method: string, name: string, query: URLSearchParams): string {
  if (method === 'GET') {
    if (name !== '') return 'get'
    const watch = query.get('watch')
    return watch === 'true' || watch === '1' ? 'watch' : 'list'
  }
  if (method === 'DELETE') return name === '' ? 'deletecollection' : 'delete'
  return WRITE_VERBS[method] ?? method.toLowerCase()
}

/** The attributes of a request (requestinfo.go `NewRequestInfo`). */
export function requestInfo(req: WireRequest): RequestInfo {
  const parts = req.path.split('/').filter((part) => part !== '')
  const base = {
    path: req.path,
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
  }
  const grouped = parts[0] === 'apis'
  if ((parts[0] !== 'api' && !grouped) || parts.length < (grouped ? 4 : 3)) {
    return { ...base, resourceRequest: false, verb: req.method.toLowerCase() }
  }
  const apiGroup = grouped ? (parts[1] ?? '') : ''
  const apiVersion = (grouped ? parts[2] : parts[1]) ?? ''
  let rest = parts.slice(grouped ? 3 : 2)
  let namespace = ''
  // `/namespaces/<ns>` is the namespace object itself; `/namespaces/<ns>/<resource>/…` is namespaced.
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1] ?? ''
    if (rest.length > 2) rest = rest.slice(2)
  }
  const [resource = '', name = '', subresource = ''] = rest
  const verb = resourceVerb(req.method, name, req.query)
  return {
    ...base,
    resourceRequest: true,
    verb,
    apiGroup,
    apiVersion,
    namespace,
    resource,
    subresource,
    name,
  }
}

/** An object as a LIST answer's item: without `apiVersion` and `kind` (the list's own kind names them). */
export function stripTypeMeta<T extends object>(object: T): T {
  const { apiVersion: _a, kind: _k, ...rest } = object as Record<string, unknown>
  return rest as T
}

/** `schema.GroupResource.String()`: `resource` for the core group, `resource.group` otherwise. */
function qualified(info: RequestInfo): string {
  return info.apiGroup === '' ? info.resource : `${info.resource}.${info.apiGroup}`
}

/** `metav1.StatusDetails` as Go serializes it: empty fields are omitted (`omitempty`), an empty struct is `{}`. */
function details(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(fields).filter(([, value]) => value !== '' && value !== undefined),
  )
}

/** A `metav1.Status` failure (apimachinery pkg/apis/meta/v1 types.go), fields in Go's serialization order. */
export function failure(
  code: number,
  reason: string,
  message: string,
  statusDetails?: Record<string, unknown>,
): WireReply {
  return {
    status: code,
    body: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      ...(statusDetails === undefined ? {} : { details: statusDetails }),
      code,
    },
  }
}

/**
 * 403 from the authorization filter: responsewriters/errors.go `Forbidden` + `forbiddenMessage`, wrapped by
 * apimachinery pkg/api/errors/errors.go `NewForbidden` (e.g. `serviceaccounts "x" is forbidden: User "u" cannot get
 * resource "serviceaccounts" in API group "" in the namespace "ns"`; `forbidden: User "u" cannot get path "/p"`).
 */
export function forbidden(info: RequestInfo, user: string): WireReply {
  const resource = info.subresource === '' ? info.resource : `${info.resource}/${info.subresource}`
  const scope =
    info.namespace === '' ? 'at the cluster scope' : `in the namespace "${info.namespace}"`
  const reason = info.resourceRequest
    ? `User "${user}" cannot ${info.verb} resource "${resource}" in API group "${info.apiGroup}" ${scope}`
    : `User "${user}" cannot ${info.verb} path "${info.path}"`
  const what = qualified(info)
  let message = `forbidden: ${reason}`
  if (what !== '')
    message = `${what}${info.name === '' ? '' : ` "${info.name}"`} is forbidden: ${reason}`
  const fields = { name: info.name, group: info.apiGroup, kind: info.resource }
  return failure(403, 'Forbidden', message, details(fields))
}

/** 404 for a missing object: errors.go `NewNotFound` (`serviceaccounts "x" not found`, details name/group/kind). */
export function notFound(info: RequestInfo): WireReply {
  const fields = { name: info.name, group: info.apiGroup, kind: info.resource }
  return failure(404, 'NotFound', `${qualified(info)} "${info.name}" not found`, details(fields))
}

/**
 * 404 for a path nothing serves: apiserver pkg/util/notfoundhandler/not_found_handler.go (a Status without
 * details; older servers sent Go's plain `404 page not found`).
 */
export function noSuchPath(): WireReply {
  return failure(404, 'NotFound', 'the server could not find the requested resource')
}

/** 409 on create of an existing name: errors.go `NewAlreadyExists`. */
export function alreadyExists(info: RequestInfo, name: string): WireReply {
  const fields = { name, group: info.apiGroup, kind: info.resource }
  return failure(
    409,
    'AlreadyExists',
    `${qualified(info)} "${name}" already exists`,
    details(fields),
  )
}

/**
 * 409 on an update from a stale resourceVersion: errors.go `NewConflict` with the store's `OptimisticLockErrorMsg`
 * (apiserver pkg/registry/generic/registry/store.go).
 */
export function conflict(info: RequestInfo): WireReply {
  const fields = { name: info.name, group: info.apiGroup, kind: info.resource }
  const message =
    `Operation cannot be fulfilled on ${qualified(info)} "${info.name}": the object has been modified; ` +
    'please apply your changes to the latest version and try again'
  return failure(409, 'Conflict', message, details(fields))
}

/** One field error (apimachinery pkg/util/validation/field/errors.go). */
export interface FieldError {
  /** The cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`. */
  readonly type: string
  readonly field: string
  /** `ErrorBody()`, e.g. `Required value: name or generateName is required`. */
  readonly body: string
}

/**
 * 422: errors.go `NewInvalid` — message `<Kind>[.<group>] "<name>" is invalid: <field>: <body>` (several errors
 * are joined as `[a, b]`, the aggregate's form), one `causes` entry per field error.
 */
export function invalid(
  kind: string,
  group: string,
  name: string,
  errors: readonly FieldError[],
): WireReply {
  const each = errors.map((e) => `${e.field}: ${e.body}`)
  const joined = each.length === 1 ? (each[0] ?? '') : `[${each.join(', ')}]`
  const qualifiedKind = group === '' ? kind : `${kind}.${group}`
  const causes = errors.map((e) => ({ reason: e.type, message: e.body, field: e.field }))
  return failure(
    422,
    'Invalid',
    `${qualifiedKind} "${name}" is invalid: ${joined}`,
    details({ name, group, kind, causes }),
  )
}

/**
 * 429 from the max-in-flight limiter: apiserver pkg/server/filters/maxinflight.go `tooManyRequests` — plain text
 * (Go's `http.Error`), not a Status, with `Retry-After: 1`.
 */
export function tooManyRequests(): WireReply {
  return {
    status: 429,
    body: undefined,
    raw: 'Too many requests, please try again later.\n',
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'x-content-type-options': 'nosniff',
      'retry-after': '1',
    },
  }
}

/** The options kind each mutating verb decodes its query into (apiserver pkg/endpoints/handlers/*.go). */
const OPTIONS_KIND: Record<string, string> = {
  POST: 'CreateOptions',
  PUT: 'UpdateOptions',
  PATCH: 'PatchOptions',
  DELETE: 'DeleteOptions',
}

/**
 * A `dryRun` query value other than `All` on a write: the handler validates the options (handlers/create.go:
 * `validation.ValidateCreateOptions` → `ValidateDryRun`, field.NotSupported) and answers 422 Invalid, e.g.
 * `CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"yes"}: supported values: "All"`.
 * Undefined when the request is fine.
 */
export function dryRunProblem(req: WireRequest): WireReply | undefined {
  const kind = OPTIONS_KIND[req.method]
  const values = req.query.getAll('dryRun')
  if (kind === undefined || values.every((value) => value === 'All')) return undefined
  const shown = `[]string{${values.map((value) => JSON.stringify(value)).join(', ')}}`
  return invalid(kind, 'meta.k8s.io', '', [
    {
      type: 'FieldValueNotSupported',
      field: 'dryRun',
      body: `Unsupported value: ${shown}: supported values: "All"`,
    },
  ])
}

/** True for `?dryRun=All`: the request runs admission and validation, and nothing is stored. */
export function isDryRun(req: WireRequest): boolean {
  return req.query.getAll('dryRun').includes('All')
}

/**
 * go-restful's `Route.matchesAccept` (vendor/github.com/emicklei/go-restful/v3/route.go): each listed media type
 * with its parameters (q-values included) cut off must equal one the route produces, or be `*` + `/*`; partial
 * wildcards such as `application/*` match nothing; an absent Accept means `*` + `/*` (jsr311.go).
 */
function acceptsAny(accept: string | undefined, produces: readonly string[]): boolean {
  const listed = accept === undefined || accept.trim() === '' ? '*/*' : accept
  return listed
    .split(',')
    .map((part) => (part.split(';')[0] ?? '').trim())
    .some((type) => type === '*/*' || produces.includes(type))
}

/**
 * 406 when no listed type matches: go-restful jsr311.go `detectRoute` makes `406: Not Acceptable\n\nAvailable
 * representations: …`, and the API server's go-restful service-error handler (apiserver pkg/server/handler.go
 * `serviceErrorHandler`) wraps it with errors.go `NewGenericServerResponse` into a NotAcceptable Status.
 */
function notAcceptable(produces: readonly string[]): WireReply {
  const message = `406: Not Acceptable\n\nAvailable representations: ${produces.join(', ')}`
  return failure(406, 'NotAcceptable', message, {})
}

/** What the OIDC discovery endpoints serve; undefined: the API server did not install them. */
export interface OpenIdMetadata {
  issuer: string
  jwksUri: string
  keys: object[]
}

export const OPENID_CONFIGURATION_PATH = '/.well-known/openid-configuration'
export const JWKS_PATH = '/openid/v1/jwks'

/**
 * The two ServiceAccount issuer discovery endpoints (kubernetes pkg/routes/openidmetadata.go): the configuration
 * is produced as `application/json`, the key set only as `application/jwk-set+json` (`mimeJWKS`), both with
 * `Cache-Control: public, max-age=3600`; the document itself follows pkg/serviceaccount/openidmetadata.go. When the
 * issuer flags do not allow discovery the routes are not installed (pkg/controlplane logs "Could not construct
 * pre-rendered responses for ServiceAccountIssuerDiscovery endpoints") and the paths are 404.
 */
export function openIdMetadataReply(
  req: WireRequest & { accept: string | undefined },
  metadata: OpenIdMetadata | undefined,
): WireReply {
  if (metadata === undefined) return noSuchPath()
  const jwks = req.path === JWKS_PATH
  const produces = [jwks ? 'application/jwk-set+json' : 'application/json']
  if (!acceptsAny(req.accept, produces)) return notAcceptable(produces)
  const body = jwks
    ? { keys: metadata.keys }
    : {
        issuer: metadata.issuer,
        jwks_uri: metadata.jwksUri,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      }
  const headers = { 'content-type': produces[0] ?? '', 'cache-control': 'public, max-age=3600' }
  return { status: 200, body, headers }
}

/** The annotation on the bookmark that ends a watch's initial events (apimachinery meta/v1 `InitialEventsAnnotationKey`). */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end'

/**
 * A BOOKMARK watch event (apiserver pkg/storage/cacher/cacher.go): an empty object of the watched kind that only
 * carries `metadata.resourceVersion` (a typed object's zero `creationTimestamp` serializes as null), plus the
 * `k8s.io/initial-events-end` annotation on the bookmark that closes a `sendInitialEvents=true` stream.
 */
export function bookmarkEvent(kind: string, apiVersion: string, rv: number, initialEnd = false) {
  const metadata = {
    resourceVersion: String(rv),
    creationTimestamp: null,
    ...(initialEnd ? { annotations: { [INITIAL_EVENTS_END]: 'true' } } : {}),
  }
  return { type: 'BOOKMARK', object: { kind, apiVersion, metadata } }
}

type Requirement = (labels: Record<string, string>) => boolean

const SET_REQUIREMENT = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/
const EQUALITY_REQUIREMENT = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/
const EXISTS_REQUIREMENT = /^(!?)([\w./-]+)$/

/** One requirement of a label selector, or undefined when it is not one of the forms below. */
function requirement(text: string): Requirement | undefined {
  const set = SET_REQUIREMENT.exec(text)
  if (set) {
    const [, key = '', op, list = ''] = set
    const values = list.split(',').map((value) => value.trim())
    return (labels) => (key in labels && values.includes(labels[key] ?? '')) === (op === 'in')
  }
  const equality = EQUALITY_REQUIREMENT.exec(text)
  if (equality) {
    const [, key = '', op, value = ''] = equality
    return (labels) => (op === '!=' ? labels[key] !== value : labels[key] === value)
  }
  const exists = EXISTS_REQUIREMENT.exec(text)
  if (exists) {
    const [, not, key = ''] = exists
    return (labels) => key in labels === (not !== '!')
  }
  return undefined
}

/** Splits a selector at the commas that are not inside a `(…)` value list. */
function requirements(selector: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const char of selector) {
    if (char === '(') depth += 1
    if (char === ')') depth -= 1
    if (char === ',' && depth === 0) {
      parts.push(current.trim())
      current = ''
    } else current += char
  }
  if (current.trim() !== '') parts.push(current.trim())
  return parts
}

/**
 * A LIST narrowed by `labelSelector`, as the storage layer filters it (apimachinery pkg/labels/selector.go: the
 * requirements `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, all of which must hold; a missing
 * label satisfies `!=` and `notin`). A selector outside these forms gets a 400 that says it is the fake's limit, not
 * the API server's wording. Any other reply passes through.
 */
export function withLabelSelector(reply: WireReply, selector: string | null): WireReply {
  const list = reply.body as { items?: Array<{ metadata?: { labels?: Record<string, string> } }> }
  if (selector === null || selector === '' || reply.status !== 200 || !Array.isArray(list.items)) {
    return reply
  }
  const tests = requirements(selector).map(requirement)
  if (tests.some((test) => test === undefined)) {
    return failure(
      400,
      'BadRequest',
      `fake-kube-api: unsupported labelSelector ${JSON.stringify(selector)}`,
    )
  }
  const items = list.items.filter((item) =>
    tests.every((test) => test?.(item.metadata?.labels ?? {}) ?? false),
  )
  return { ...reply, body: { ...list, items } }
}
