// The fake API's pod routes (test/support/fake-kube-api-pods.ts) read by the official client (@kubernetes/client-node)
// and by raw HTTP: paginated LIST, 410 Gone for an expired continue, eviction 201/429/404, events.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node'
import { podManifest, stored } from '../support/audit-cluster.ts'
import { FAKE_TOKEN, type FakeKubeApi, startFakeKubeApi } from '../support/fake-kube-api.ts'
import {
  type FakePods,
  INCONSISTENT_CONTINUE,
  installPods,
  PDB_VIOLATION,
} from '../support/fake-kube-api-pods.ts'
import { assertFailureStatus } from '../support/webhook.ts'

type Json = Record<string, unknown>

describe('fake kube-apiserver: pods', () => {
  let api: FakeKubeApi
  let pods: FakePods
  let core: CoreV1Api
  const raw = async (method: string, path: string, body?: object) => {
    const response = await fetch(`${api.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${FAKE_TOKEN}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: response.status, body: (await response.json()) as Json }
  }
  const ns1Page = (limit: number, token: string) =>
    raw('GET', `/api/v1/namespaces/ns1/pods?limit=${limit}&continue=${encodeURIComponent(token)}`)
  const itemNames = (list: Json) =>
    (list['items'] as Json[]).map((p) => (p['metadata'] as Json)['name'])
  /** errors.go `NewNotFound` on the wire (test/support/kube-apiserver-wire.ts builds it). */
  const assertNotFound = (
    answer: { status: number; body: Json },
    message: string,
    details: Json,
  ) => {
    assert.equal(answer.status, 404)
    assertFailureStatus(answer.body, 404, 'NotFound', message, details)
  }

  before(async () => {
    api = await startFakeKubeApi()
    pods = installPods(api)
    for (const name of ['c', 'a', 'b', 'e', 'd']) {
      pods.put(stored(podManifest({ namespace: 'ns1', name, labels: { app: 'x' } })))
    }
    pods.put(stored(podManifest({ namespace: 'ns0', name: 'z' })))
    const config = new KubeConfig()
    config.loadFromFile(api.kubeconfigPath)
    core = config.makeApiClient(CoreV1Api)
  })
  after(() => api.close())

  it('pages a cluster-wide LIST in key order with continue and remainingItemCount (client-node)', async () => {
    const names: string[] = []
    let token: string | undefined
    const remaining: (number | undefined)[] = []
    do {
      const page = await core.listPodForAllNamespaces({
        limit: 4,
        ...(token ? { _continue: token } : {}),
      })
      names.push(...page.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`))
      remaining.push(page.metadata?.remainingItemCount)
      token = page.metadata?._continue
    } while (token)
    assert.deepEqual(names, ['ns0/z', 'ns1/a', 'ns1/b', 'ns1/c', 'ns1/d', 'ns1/e'])
    assert.deepEqual(remaining, [2, undefined])
  })

  it('serves later pages from the first page snapshot; an expired token is 410 Expired with a new continue', async () => {
    const first = await raw('GET', '/api/v1/namespaces/ns1/pods?limit=2')
    const token = String((first.body['metadata'] as Json)['continue'])
    // apiserver pkg/storage/continue.go: unpadded base64url JSON; anything else is a 400, not a fresh listing.
    assert.match(token, /^[A-Za-z0-9_-]+$/)
    assert.deepEqual(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')), {
      v: 'meta.k8s.io/v1',
      rv: Number((first.body['metadata'] as Json)['resourceVersion']),
      start: 'ns1/b\u0000',
    })
    const padded = Buffer.from(token, 'base64url').toString('base64')
    const refused = await ns1Page(2, `${padded}==`)
    assert.equal(refused.status, 400)
    pods.remove('ns1', 'c')
    const second = await ns1Page(2, token)
    assert.deepEqual(itemNames(second.body), ['c', 'd'])
    pods.expireContinueTokens()
    const gone = await ns1Page(2, token)
    assert.equal(gone.status, 410)
    assert.equal(gone.body['reason'], 'Expired')
    assert.equal(gone.body['message'], INCONSISTENT_CONTINUE)
    const inconsistent = String((gone.body['metadata'] as Json)['continue'])
    assert.deepEqual(gone.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: { continue: inconsistent },
      status: 'Failure',
      message: INCONSISTENT_CONTINUE,
      reason: 'Expired',
      code: 410,
    })
    const rest = await ns1Page(10, inconsistent)
    assert.deepEqual(itemNames(rest.body), ['d', 'e'])
    pods.put(stored(podManifest({ namespace: 'ns1', name: 'c', labels: { app: 'x' } })))
  })

  it('evicts through policy/v1 (201 Status Success), refuses under a budget (429) and 404s a missing pod', async () => {
    const eviction = (name: string) => ({
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name, namespace: 'ns1' },
    })
    const ok = await raw('POST', '/api/v1/namespaces/ns1/pods/a/eviction', eviction('a'))
    assert.equal(ok.status, 201)
    assert.deepEqual(ok.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      code: 201,
    })
    assert.equal(pods.get('ns1', 'a'), undefined)
    pods.addBudget({
      namespace: 'ns1',
      name: 'x-pdb',
      matchLabels: { app: 'x' },
      disruptionsAllowed: 0,
      desiredHealthy: 4,
      currentHealthy: 4,
    })
    const blocked = await raw('POST', '/api/v1/namespaces/ns1/pods/b/eviction', eviction('b'))
    assert.equal(blocked.status, 429)
    assert.equal(blocked.body['message'], PDB_VIOLATION)
    assert.deepEqual((blocked.body['details'] as Json)['causes'], [
      {
        reason: 'DisruptionBudget',
        message: 'The disruption budget x-pdb needs 4 healthy pods and has 4 currently',
      },
    ])
    await assert.rejects(
      core.createNamespacedPodEviction({ name: 'gone', namespace: 'ns1', body: eviction('gone') }),
      (error: unknown) => error instanceof ApiException && error.code === 404,
    )
    assertNotFound(
      await raw('POST', '/api/v1/namespaces/ns1/pods/gone/eviction', eviction('gone')),
      'pods "gone" not found',
      { name: 'gone', kind: 'pods' },
    )
    const mismatch = await raw('POST', '/api/v1/namespaces/ns1/pods/b/eviction', eviction('other'))
    assert.equal(mismatch.status, 400)
  })

  it('404s a missing pod or owner with a NotFound Status naming the resource (and group)', async () => {
    assertNotFound(await raw('GET', '/api/v1/namespaces/ns1/pods/nope'), 'pods "nope" not found', {
      name: 'nope',
      kind: 'pods',
    })
    assertNotFound(
      await raw('GET', '/apis/apps/v1/namespaces/ns1/replicasets/web-1'),
      'replicasets.apps "web-1" not found',
      { name: 'web-1', group: 'apps', kind: 'replicasets' },
    )
  })

  it('creates core/v1 Events; a taken name is 409 AlreadyExists', async () => {
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'b.irsa' },
      involvedObject: { kind: 'Pod', name: 'b' },
      reason: 'R',
      message: 'm',
      type: 'Warning',
    }
    const created = await core.createNamespacedEvent({ namespace: 'ns1', body: event })
    assert.equal(created.metadata?.namespace, 'ns1')
    const again = await raw('POST', '/api/v1/namespaces/ns1/events', event)
    assert.equal(again.status, 409)
    assert.equal(again.body['reason'], 'AlreadyExists')
    assert.equal(again.body['message'], 'events "b.irsa" already exists')
  })
})
