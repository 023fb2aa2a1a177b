/**
 * Paginated LISTs (`limit` + `continue`), one page in memory at a time, for the CLI's cluster-wide reads.
 * @module
 */
import type { KubeClient, KubeResponse } from './kube.ts'
import { statusMessage } from './kube.ts'

/** The cluster could not be read: the command exits 3 with this message. */
export class ClusterReadError extends Error {
  override readonly name = 'ClusterReadError'
}

/** What a LIST reads, for messages that name the missing RBAC permission. */
export interface ListTarget {
  /** API path of the collection, e.g. `/api/v1/pods` or `/api/v1/namespaces/shop/pods`. */
  readonly path: string
  /** `pods`, `serviceaccounts`, … (with the API group for non-core resources, e.g. `replicasets.apps`). */
  readonly resource: string
  /** The namespace, or undefined for a cluster-wide list. */
  readonly namespace: string | undefined
}

/** A page the API server refused or a reply that is not a list. */
class ListPageError extends Error {
  override readonly name = 'ListPageError'
  readonly status: number | undefined
  constructor(message: string, status: number | undefined) {
    super(message)
    this.status = status
  }
}

function scope(target: ListTarget): string {
  return target.namespace === undefined ? 'cluster-wide' : `in namespace ${target.namespace}`
}

/** The message for a 403: which verb on which resource the caller lacks. */
function forbiddenMessage(target: ListTarget, response?: KubeResponse): string {
  const server = response === undefined ? '' : ` (${statusMessage(response)})`
  return `cannot list ${target.resource} ${scope(target)}: forbidden${server}; grant the RBAC verb "list" on "${target.resource}"`
}

async function fetchPage(client: KubeClient, target: ListTarget, limit: number, token: string) {
  const query = new URLSearchParams({ limit: String(limit) })
  if (token !== '') query.set('continue', token)
  let response: KubeResponse
  try {
    response = await client.get(`${target.path}?${query}`)
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new ListPageError(`LIST ${target.path}: ${reason}`, undefined)
  }
  if (response.status === 403) throw new ListPageError(forbiddenMessage(target, response), 403)
  if (response.status !== 200) {
    throw new ListPageError(`LIST ${target.path}: ${statusMessage(response)}`, response.status)
  }
  const body = response.body as { items?: unknown; metadata?: { continue?: unknown } } | undefined
  if (!Array.isArray(body?.items)) {
    throw new ListPageError(`LIST ${target.path}: the reply is not a list`, response.status)
  }
  const next = body.metadata?.continue
  return { items: body.items as unknown[], next: typeof next === 'string' ? next : '' }
}

/** The pages of one listing, each fetched when the previous one has been handled. */
async function* listPages(
  client: KubeClient,
  target: ListTarget,
  limit: number,
): AsyncGenerator<unknown[]> {
  let token = ''
  do {
    const page = await fetchPage(client, target, limit, token)
    yield page.items
    token = page.next
  } while (token !== '')
}

/** `namespace/name` of a listed object: the order the API server lists in (its storage keys). */
function keyOf(item: unknown): string {
  const metadata = (item as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata
  return `${String(metadata?.namespace ?? '')}/${String(metadata?.name ?? '')}`
}

/** One pass over the listing; resolves true when complete, or the failure that ended it. */
async function onePass(
  client: KubeClient,
  target: ListTarget,
  limit: number,
  visit: (item: unknown) => void | Promise<void>,
  after: { key: string; skip: boolean },
): Promise<true | ListPageError> {
  const pages = listPages(client, target, limit)
  for (;;) {
    let next: IteratorResult<unknown[]>
    try {
      next = await pages.next()
    } catch (error) {
      return error instanceof ListPageError ? error : new ListPageError(String(error), undefined)
    }
    if (next.done) return true
    await visitPage(next.value, visit, after)
  }
}

/** Visits a page's items; after a restart, the ones the first pass already visited are skipped. */
async function visitPage(
  items: readonly unknown[],
  visit: (item: unknown) => void | Promise<void>,
  after: { key: string; skip: boolean },
): Promise<void> {
  for (const item of items) {
    const key = keyOf(item)
    if (after.skip && key <= after.key) continue
    const visited = visit(item)
    if (visited !== undefined) await visited
    after.key = key
  }
}

/**
 * Visits every item of a collection, one page at a time. When a page fails (an API error, a network error, or 410
 * Gone for an expired `continue`), the listing restarts once from the beginning and the items already visited are
 * skipped (the API server lists in key order: k8s.io/apiserver pkg/storage/etcd3/store.go `GetList`); a second
 * failure, or a 403, throws a ClusterReadError. `onRestart` is told why.
 */
export async function forEachListed(
  client: KubeClient,
  target: ListTarget,
  limit: number,
  visit: (item: unknown) => void | Promise<void>,
  onRestart: (reason: string) => void = () => undefined,
): Promise<void> {
  const after = { key: '', skip: false }
  const first = await onePass(client, target, limit, visit, after)
  if (first === true) return
  if (first.status === 403) throw new ClusterReadError(first.message)
  onRestart(first.message)
  after.skip = true
  const second = await onePass(client, target, limit, visit, after)
  if (second !== true) throw new ClusterReadError(`${second.message} (after one restart)`)
}
