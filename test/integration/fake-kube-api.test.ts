import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ConfigurationOptions, RequestContext, ResponseContext } from '@kubernetes/client-node'
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  Observable,
  type V1ServiceAccount,
  Watch,
} from '@kubernetes/client-node'
import { type FakeKubeApi, startFakeKubeApi } from '../support/fake-kube-api.ts'

const ROLE = 'api.vultr.com/role'
const NS = 'e2e-fake'
const SA_PATH = `/api/v1/namespaces/${NS}/serviceaccounts/irsa-sa`
const irsaSa = {
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name: 'irsa-sa', namespace: NS, annotations: { [ROLE]: 'role-uuid-1' } },
}

/** Fails (instead of hanging) when `promise` has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const poll = async () => {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await within(poll(), 10_000, what)
}

/** Per-call options that attach an AbortSignal, keeping the client's own middleware. */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  const middleware = {
    pre: (ctx: RequestContext) => {
      ctx.setSignal(signal)
      return new Observable(Promise.resolve(ctx))
    },
    post: (rsp: ResponseContext) => new Observable(Promise.resolve(rsp)),
  }
  return { middleware: [middleware], middlewareMergeStrategy: 'append' }
}

function kubeConfigFor(fake: FakeKubeApi): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromFile(fake.kubeconfigPath)
  return kc
}

async function apiError(promise: Promise<unknown>): Promise<ApiException<string>> {
  const error = await promise.then(
    () => assert.fail('expected the call to fail'),
    (e: unknown) => e,
  )
  assert.ok(error instanceof ApiException, `expected ApiException, got ${String(error)}`)
  return error as ApiException<string>
}

interface StatusBody {
  kind: string
  message: string
  reason: string
  code: number
}

async function statusOf(response: Response): Promise<StatusBody> {
  return (await response.json()) as StatusBody
}

function get(fake: FakeKubeApi, path: string, token = 'fake-token'): Promise<Response> {
  return fetch(`${fake.url}${path}`, { headers: { authorization: `Bearer ${token}` } })
}

for (const tls of [false, true]) {
  describe(`the fake kube-apiserver over ${tls ? 'HTTPS' : 'plain HTTP'}`, () => {
    let fake: FakeKubeApi
    let core: CoreV1Api
    before(async () => {
      fake = await startFakeKubeApi({ tls, serviceAccounts: [irsaSa] })
      core = kubeConfigFor(fake).makeApiClient(CoreV1Api)
    })
    after(() => fake.close())

    it('serves an existing ServiceAccount to CoreV1Api with a resourceVersion and uid', async () => {
      const sa = await core.readNamespacedServiceAccount({ name: 'irsa-sa', namespace: NS })
      assert.equal(fake.url.startsWith(tls ? 'https://' : 'http://'), true)
      assert.equal(sa.kind, 'ServiceAccount')
      assert.equal(sa.metadata?.annotations?.[ROLE], 'role-uuid-1')
      assert.match(sa.metadata?.resourceVersion ?? '', /^\d+$/)
      assert.match(sa.metadata?.uid ?? '', /^[0-9a-f-]{36}$/)
      assert.equal(fake.requests.at(-1)?.headers.authorization, 'Bearer fake-token')
    })

    it('answers a missing ServiceAccount with an ApiException 404 carrying a NotFound Status', async () => {
      const error = await apiError(
        core.readNamespacedServiceAccount({ name: 'nope', namespace: NS }),
      )
      assert.equal(error.code, 404)
      const status = JSON.parse(error.body)
      assert.equal(status.kind, 'Status')
      assert.equal(status.reason, 'NotFound')
      assert.equal(status.message, 'serviceaccounts "nope" not found')
    })

    it('answers 403 Forbidden while a status fault is set, and normally once it is cleared', async () => {
      fake.fault({ path: SA_PATH, status: 403 })
      const error = await apiError(
        core.readNamespacedServiceAccount({ name: 'irsa-sa', namespace: NS }),
      )
      assert.equal(error.code, 403)
      assert.equal(JSON.parse(error.body).reason, 'Forbidden')
      fake.clearFaults()
      const sa = await core.readNamespacedServiceAccount({ name: 'irsa-sa', namespace: NS })
      assert.equal(sa.metadata?.name, 'irsa-sa')
    })

    it('lets the caller abort a request that a delay fault holds back', async () => {
      fake.fault({ path: SA_PATH, delayMs: 60_000, times: 1 })
      const seen = fake.requests.length
      const controller = new AbortController()
      const call = core.readNamespacedServiceAccount(
        { name: 'irsa-sa', namespace: NS },
        withSignal(controller.signal),
      )
      await until(() => fake.requests.length > seen, 'the delayed request to arrive')
      controller.abort()
      await assert.rejects(within(call, 10_000, 'the aborted call'), { name: 'AbortError' })
      const sa = await core.readNamespacedServiceAccount({ name: 'irsa-sa', namespace: NS })
      assert.equal(sa.metadata?.name, 'irsa-sa')
    })

    it('feeds an informer: LIST, WATCH from the list resourceVersion, then ADDED and MODIFIED', async () => {
      const kc = kubeConfigFor(fake)
      const client = kc.makeApiClient(CoreV1Api)
      let listRv: string | undefined
      const list = async () => {
        const result = await client.listServiceAccountForAllNamespaces()
        listRv = result.metadata?.resourceVersion
        return result
      }
      const informer = makeInformer<V1ServiceAccount>(kc, '/api/v1/serviceaccounts', list)
      const added: string[] = []
      const updated: string[] = []
      const errors: unknown[] = []
      informer.on('add', (sa) => added.push(sa.metadata?.name ?? ''))
      informer.on('update', (sa) => updated.push(sa.metadata?.annotations?.[ROLE] ?? ''))
      informer.on('error', (error) => errors.push(error))
      try {
        await within(informer.start(), 10_000, 'the informer to start')
        const watch = fake.requests.find((r) => r.query.get('watch') === 'true')
        assert.equal(watch?.path, '/api/v1/serviceaccounts')
        assert.match(listRv ?? '', /^\d+$/)
        assert.equal(watch?.query.get('resourceVersion'), listRv)
        assert.deepEqual(added, ['irsa-sa'])

        fake.setServiceAccount({ metadata: { name: 'late', namespace: NS } })
        await until(() => added.includes('late'), 'the ADDED event')
        fake.setServiceAccount({
          metadata: { name: 'late', namespace: NS, annotations: { [ROLE]: 'r2' } },
        })
        await until(() => updated.includes('r2'), 'the MODIFIED event')
        assert.equal(informer.get('late', NS)?.metadata?.annotations?.[ROLE], 'r2')
        assert.deepEqual(errors, [])
      } finally {
        await informer.stop()
        fake.deleteServiceAccount(NS, 'late')
      }
    })
  })
}

interface WatchLine {
  type: string
  object: { metadata: { name: string; namespace: string; resourceVersion: string } }
}

function watchLines(text: string): WatchLine[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as WatchLine)
}

describe('the fake kube-apiserver beyond ServiceAccount reads', () => {
  let fake: FakeKubeApi
  before(async () => {
    fake = await startFakeKubeApi({ serviceAccounts: [irsaSa] })
  })
  after(() => fake.close())

  it('rejects a request without the fake bearer token with a 401 Status', async () => {
    const response = await get(fake, SA_PATH, 'wrong')
    assert.equal(response.status, 401)
    assert.deepEqual(await response.json(), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    })
  })

  it('answers an unknown path with a 404 Status and records every request', async () => {
    const response = await get(fake, '/apis/nothing.example/v1/widgets?limit=5')
    assert.equal(response.status, 404)
    const status = await statusOf(response)
    assert.equal(status.message, 'the server could not find the requested resource')
    assert.equal(status.reason, 'NotFound')
    const recorded = fake.requests.at(-1)
    assert.equal(recorded?.path, '/apis/nothing.example/v1/widgets')
    assert.equal(recorded?.query.get('limit'), '5')
  })

  it('lists and gets objects stored with putObject, through the real typed clients', async () => {
    const mwcs = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations'
    fake.putObject(mwcs, { kind: 'MutatingWebhookConfiguration', metadata: { name: 'irsa' } })
    fake.putObject('/api/v1/namespaces/irsa-system/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'irsa-webhook' },
      spec: { ports: [{ port: 443 }] },
    })
    const kc = kubeConfigFor(fake)
    const admission = kc.makeApiClient(AdmissionregistrationV1Api)
    const list = await admission.listMutatingWebhookConfiguration()
    assert.deepEqual(
      list.items.map((m) => m.metadata?.name),
      ['irsa'],
    )
    const mwc = await admission.readMutatingWebhookConfiguration({ name: 'irsa' })
    assert.equal(mwc.apiVersion, 'admissionregistration.k8s.io/v1')
    const service = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedService({ name: 'irsa-webhook', namespace: 'irsa-system' })
    assert.equal(service.metadata?.namespace, 'irsa-system')
    assert.equal(service.spec?.ports?.[0]?.port, 443)
    const missing = await get(fake, `${mwcs}/other`)
    assert.equal(missing.status, 404)
    assert.equal(
      (await statusOf(missing)).message,
      'mutatingwebhookconfigurations "other" not found',
    )
  })

  it('gives the client an error when a fault kills the socket mid-body or before headers', async () => {
    const core = kubeConfigFor(fake).makeApiClient(CoreV1Api)
    const read = () => core.readNamespacedServiceAccount({ name: 'irsa-sa', namespace: NS })
    for (const destroy of ['mid-body', 'before-headers'] as const) {
      fake.fault({ method: 'GET', path: /\/serviceaccounts\/irsa-sa$/, destroy, times: 1 })
      const error = await within(
        read().catch((e: unknown) => e),
        10_000,
        `the ${destroy} failure`,
      )
      assert.ok(error instanceof Error, `${destroy} should reject`)
      assert.ok(!(error instanceof ApiException), `${destroy} should not look like an API answer`)
    }
    assert.equal((await read()).metadata?.name, 'irsa-sa')
  })

  it('applies a counted status fault only as many times as asked', async () => {
    fake.fault({ method: 'GET', path: SA_PATH, status: 500, times: 1 })
    const first = await get(fake, SA_PATH)
    assert.equal(first.status, 500)
    assert.equal((await statusOf(first)).reason, 'InternalError')
    assert.equal((await get(fake, SA_PATH)).status, 200)
  })

  it('answers custom routes before the built-ins and records the request body', async () => {
    fake.route('POST', /\/serviceaccounts\/[^/]+\/token$/, (req) => ({
      status: 201,
      body: { kind: 'TokenRequest', echo: JSON.parse(req.body) },
    }))
    const response = await fetch(`${fake.url}${SA_PATH}/token`, {
      method: 'POST',
      headers: { authorization: 'Bearer fake-token', 'content-type': 'application/json' },
      body: JSON.stringify({ spec: { audiences: ['vultr'] } }),
    })
    assert.equal(response.status, 201)
    assert.deepEqual(await response.json(), {
      kind: 'TokenRequest',
      echo: { spec: { audiences: ['vultr'] } },
    })
    assert.equal(fake.requests.at(-1)?.method, 'POST')
  })

  it('resumes a namespaced watch after a resourceVersion and ends it at timeoutSeconds', async () => {
    const listed = await get(fake, `/api/v1/namespaces/${NS}/serviceaccounts`)
    const initial = (await listed.json()) as { kind: string; metadata: { resourceVersion: string } }
    assert.equal(initial.kind, 'ServiceAccountList')
    const since = initial.metadata.resourceVersion
    fake.setServiceAccount({ ...irsaSa, metadata: { ...irsaSa.metadata, labels: { x: 'y' } } })
    fake.setServiceAccount({ metadata: { name: 'elsewhere', namespace: 'other' } })
    fake.setServiceAccount({ metadata: { name: 'short-lived', namespace: NS } })
    fake.deleteServiceAccount(NS, 'short-lived')
    const path = `/api/v1/namespaces/${NS}/serviceaccounts?watch=1&timeoutSeconds=1`
    const response = await get(fake, `${path}&resourceVersion=${since}`)
    assert.equal(response.headers.get('content-type'), 'application/json')
    const events = watchLines(await within(response.text(), 10_000, 'the watch to time out'))
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.object.metadata.name}`),
      ['MODIFIED irsa-sa', 'ADDED short-lived', 'DELETED short-lived'],
    )
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion))
    assert.deepEqual(
      rvs,
      [...rvs].sort((a, b) => a - b),
    )
    const fresh = watchLines(await (await get(fake, path)).text())
    assert.deepEqual(
      fresh.map((e) => `${e.type} ${e.object.metadata.name}`),
      ['ADDED irsa-sa'],
    )
  })
})

describe('a watch from a resourceVersion older than the kept event log', () => {
  it('gets an ERROR event with a 410 Expired Status, as client-node expects for a relist', async () => {
    const fake = await startFakeKubeApi({ serviceAccounts: [irsaSa] })
    try {
      const first = irsaSa.metadata
      for (let i = 0; i < 1001; i += 1) {
        fake.setServiceAccount({ ...irsaSa, metadata: { ...first, labels: { n: String(i) } } })
      }
      const response = await get(fake, '/api/v1/serviceaccounts?watch=true&resourceVersion=1')
      const events = (await within(response.text(), 10_000, 'the watch to end'))
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { type: string; object: StatusBody })
      assert.deepEqual(
        events.map((e) => [e.type, e.object.kind, e.object.reason, e.object.code]),
        [['ERROR', 'Status', 'Expired', 410]],
      )
    } finally {
      await fake.close()
    }
  })
})

describe('closing the fake kube-apiserver', () => {
  it('ends an open client-node Watch and resolves promptly', async () => {
    const fake = await startFakeKubeApi({ serviceAccounts: [irsaSa] })
    const types: string[] = []
    let finished: (error: unknown) => void = () => undefined
    const done = new Promise<unknown>((resolve) => {
      finished = resolve
    })
    const watch = new Watch(kubeConfigFor(fake))
    await watch.watch('/api/v1/serviceaccounts', {}, (type) => types.push(type), finished)
    await until(() => types.length > 0, 'the initial ADDED event')
    await within(fake.close(), 5_000, 'close()')
    await within(done, 5_000, 'the watch to end')
    assert.deepEqual(types, ['ADDED'])
    await assert.rejects(get(fake, SA_PATH))
  })
})
