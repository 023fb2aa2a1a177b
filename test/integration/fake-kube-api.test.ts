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
import { assertFailureStatus } from '../support/webhook.ts'

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
      assert.deepEqual(status.details, { name: 'nope', kind: 'serviceaccounts' })
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
    assertFailureStatus(await response.json(), 401, 'Unauthorized', 'Unauthorized')
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
      'mutatingwebhookconfigurations.admissionregistration.k8s.io "other" not found',
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

// ---- kube-apiserver behaviours beyond reads (sources cited in test/support/kube-apiserver-wire.ts) ----

function call(
  fake: FakeKubeApi,
  method: string,
  path: string,
  init: { body?: unknown; accept?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = { authorization: 'Bearer fake-token' }
  if (init.accept !== undefined) headers['accept'] = init.accept
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  const body = init.body === undefined ? undefined : JSON.stringify(init.body)
  return fetch(`${fake.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
}

const JWKS = '/openid/v1/jwks'
const DISCOVERY = '/.well-known/openid-configuration'

describe('the fake kube-apiserver: OIDC discovery content negotiation', () => {
  let fake: FakeKubeApi
  let served = true
  before(async () => {
    fake = await startFakeKubeApi()
    fake.serveOpenIdMetadata(() =>
      served
        ? {
            issuer: 'https://issuer.test',
            jwksUri: 'https://issuer.test/keys',
            keys: [{ kid: 'k1' }],
          }
        : undefined,
    )
  })
  after(() => fake.close())

  it('serves the JWKS only as application/jwk-set+json and answers application/json with 406', async () => {
    const refused = await call(fake, 'GET', JWKS, { accept: 'application/json' })
    assert.equal(refused.status, 406)
    assert.equal(refused.headers.get('content-type'), 'application/json')
    assertFailureStatus(
      await refused.json(),
      406,
      'NotAcceptable',
      '406: Not Acceptable\n\nAvailable representations: application/jwk-set+json',
      {},
    )
    for (const accept of [
      'application/jwk-set+json',
      'application/jwk-set+json, application/json;q=0.9',
      '*/*',
    ]) {
      const ok = await call(fake, 'GET', JWKS, { accept })
      assert.equal(ok.status, 200, accept)
      assert.equal(ok.headers.get('content-type'), 'application/jwk-set+json')
      assert.equal(ok.headers.get('cache-control'), 'public, max-age=3600')
      assert.deepEqual(await ok.json(), { keys: [{ kid: 'k1' }] })
    }
    // go-restful matches exact types or */* only; a partial wildcard matches nothing.
    assert.equal((await call(fake, 'GET', JWKS, { accept: 'application/*' })).status, 406)
  })

  it('serves the discovery document as application/json and refuses a JWKS-only Accept', async () => {
    const ok = await call(fake, 'GET', DISCOVERY, { accept: 'application/json' })
    assert.equal(ok.status, 200)
    assert.equal(ok.headers.get('content-type'), 'application/json')
    assert.deepEqual(await ok.json(), {
      issuer: 'https://issuer.test',
      jwks_uri: 'https://issuer.test/keys',
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    })
    const refused = await call(fake, 'GET', DISCOVERY, { accept: 'application/jwk-set+json' })
    assert.equal(refused.status, 406)
    assert.equal(
      (await statusOf(refused)).message,
      '406: Not Acceptable\n\nAvailable representations: application/json',
    )
  })

  it('answers both paths with the not-found handler Status when discovery is not installed', async () => {
    served = false
    try {
      for (const path of [DISCOVERY, JWKS]) {
        const response = await call(fake, 'GET', path, { accept: 'application/jwk-set+json' })
        assert.equal(response.status, 404)
        assertFailureStatus(
          await response.json(),
          404,
          'NotFound',
          'the server could not find the requested resource',
        )
      }
    } finally {
      served = true
    }
  })
})

describe('the fake kube-apiserver: error Status bodies', () => {
  let fake: FakeKubeApi
  before(async () => {
    fake = await startFakeKubeApi({ serviceAccounts: [irsaSa] })
  })
  after(() => fake.close())

  it('denies with the authorizer message for resources and for non-resource paths', async () => {
    fake.forbid(SA_PATH, 'GET')
    fake.forbid('/openid/v1/jwks')
    try {
      const core = kubeConfigFor(fake).makeApiClient(CoreV1Api)
      const error = await apiError(
        core.readNamespacedServiceAccount({ name: 'irsa-sa', namespace: NS }),
      )
      assert.equal(error.code, 403)
      assertFailureStatus(
        JSON.parse(error.body),
        403,
        'Forbidden',
        `serviceaccounts "irsa-sa" is forbidden: User "fake-user" cannot get resource "serviceaccounts" in API group "" in the namespace "${NS}"`,
        { name: 'irsa-sa', kind: 'serviceaccounts' },
      )
      const path = await call(fake, 'GET', '/openid/v1/jwks')
      assertFailureStatus(
        await path.json(),
        403,
        'Forbidden',
        'forbidden: User "fake-user" cannot get path "/openid/v1/jwks"',
        {},
      )
    } finally {
      fake.clearForbidden()
    }
  })

  it('answers injected 403/404/409/422 faults with the Status kube-apiserver sends for that request', async () => {
    const mwc = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/irsa'
    const cases: Array<[number, string, string, object]> = [
      [
        403,
        'GET',
        'mutatingwebhookconfigurations.admissionregistration.k8s.io "irsa" is forbidden: User "fake-user" cannot get resource "mutatingwebhookconfigurations" in API group "admissionregistration.k8s.io" at the cluster scope',
        {
          name: 'irsa',
          group: 'admissionregistration.k8s.io',
          kind: 'mutatingwebhookconfigurations',
        },
      ],
      [
        404,
        'GET',
        'mutatingwebhookconfigurations.admissionregistration.k8s.io "irsa" not found',
        {
          name: 'irsa',
          group: 'admissionregistration.k8s.io',
          kind: 'mutatingwebhookconfigurations',
        },
      ],
      [
        409,
        'PUT',
        'Operation cannot be fulfilled on mutatingwebhookconfigurations.admissionregistration.k8s.io "irsa": the object has been modified; please apply your changes to the latest version and try again',
        {
          name: 'irsa',
          group: 'admissionregistration.k8s.io',
          kind: 'mutatingwebhookconfigurations',
        },
      ],
    ]
    const reasons: Record<number, string> = { 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict' }
    for (const [status, method, message, details] of cases) {
      fake.fault({ path: mwc, status, times: 1 })
      const response = await call(fake, method, mwc, method === 'GET' ? {} : { body: {} })
      assert.equal(response.status, status)
      assertFailureStatus(await response.json(), status, reasons[status] ?? '', message, details)
    }
    fake.fault({ path: `/api/v1/namespaces/${NS}/serviceaccounts`, status: 409, times: 1 })
    const taken = await call(fake, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: { metadata: { name: 'irsa-sa' } },
    })
    assertFailureStatus(
      await taken.json(),
      409,
      'AlreadyExists',
      'serviceaccounts "irsa-sa" already exists',
      { name: 'irsa-sa', kind: 'serviceaccounts' },
    )
    fake.fault({ path: mwc, status: 422, times: 1 })
    const body = { kind: 'MutatingWebhookConfiguration', metadata: { name: 'irsa' } }
    const invalid = (await (await call(fake, 'PUT', mwc, { body })).json()) as {
      reason: string
      code: number
      message: string
      details: { causes: unknown[] }
    }
    assert.equal(invalid.reason, 'Invalid')
    assert.equal(invalid.code, 422)
    assert.match(
      invalid.message,
      /^MutatingWebhookConfiguration\.admissionregistration\.k8s\.io "irsa" is invalid: /,
    )
    assert.equal(invalid.details.causes.length, 1)
  })

  it('answers an injected 429 like the in-flight limiter: plain text with Retry-After, not a Status', async () => {
    fake.fault({ path: SA_PATH, status: 429, times: 1 })
    const response = await call(fake, 'GET', SA_PATH)
    assert.equal(response.status, 429)
    assert.equal(response.headers.get('content-type'), 'text/plain; charset=utf-8')
    assert.equal(response.headers.get('retry-after'), '1')
    assert.equal(await response.text(), 'Too many requests, please try again later.\n')
  })
})

describe('the fake kube-apiserver: creates and ?dryRun=All', () => {
  let fake: FakeKubeApi
  const collection = `/api/v1/namespaces/${NS}/serviceaccounts`
  before(async () => {
    fake = await startFakeKubeApi({ serviceAccounts: [irsaSa] })
  })
  after(() => fake.close())

  it('answers a dry-run create like a create but stores nothing and sends no watch event', async () => {
    const before = (await (await get(fake, collection)).json()) as {
      metadata: { resourceVersion: string }
    }
    const sa = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'dry' } }
    const response = await call(fake, 'POST', `${collection}?dryRun=All`, { body: sa })
    assert.equal(response.status, 201)
    const created = (await response.json()) as { metadata: Record<string, unknown> }
    assert.equal(created.metadata['name'], 'dry')
    assert.equal(created.metadata['namespace'], NS)
    assert.match(String(created.metadata['uid']), /^[0-9a-f-]{36}$/)
    assert.equal('resourceVersion' in created.metadata, false)
    assert.equal((await get(fake, `${collection}/dry`)).status, 404)
    const watch = await get(
      fake,
      `${collection}?watch=1&timeoutSeconds=1&resourceVersion=${before.metadata.resourceVersion}`,
    )
    assert.deepEqual(watchLines(await within(watch.text(), 10_000, 'the watch to end')), [])
  })

  it('stores a real create, announces it to watchers, and refuses the same name with AlreadyExists', async () => {
    const sa = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'wet' } }
    const response = await call(fake, 'POST', collection, { body: sa })
    assert.equal(response.status, 201)
    const created = (await response.json()) as { metadata: { resourceVersion?: string } }
    assert.match(created.metadata.resourceVersion ?? '', /^\d+$/)
    assert.equal((await get(fake, `${collection}/wet`)).status, 200)
    const again = await call(fake, 'POST', collection, { body: sa })
    assert.equal(again.status, 409)
    assert.equal((await statusOf(again)).reason, 'AlreadyExists')
  })

  it('refuses a dryRun value other than All with 422, as the options validation does', async () => {
    const response = await call(fake, 'POST', `${collection}?dryRun=yes`, {
      body: { metadata: { name: 'x' } },
    })
    assert.equal(response.status, 422)
    assertFailureStatus(
      await response.json(),
      422,
      'Invalid',
      'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"yes"}: supported values: "All"',
      {
        group: 'meta.k8s.io',
        kind: 'CreateOptions',
        causes: [
          {
            reason: 'FieldValueNotSupported',
            message: 'Unsupported value: []string{"yes"}: supported values: "All"',
            field: 'dryRun',
          },
        ],
      },
    )
    assert.equal((await get(fake, `${collection}/x`)).status, 404)
  })

  it('refuses an object with neither name nor generateName, and names a generateName object', async () => {
    const nameless = await call(fake, 'POST', collection, {
      body: { kind: 'ServiceAccount', metadata: {} },
    })
    assert.equal(nameless.status, 422)
    assert.equal(
      (await statusOf(nameless)).message,
      'ServiceAccount "" is invalid: metadata.name: Required value: name or generateName is required',
    )
    const generated = await call(fake, 'POST', `${collection}?dryRun=All`, {
      body: { kind: 'ServiceAccount', metadata: { generateName: 'probe-' } },
    })
    assert.equal(generated.status, 201)
    const name = ((await generated.json()) as { metadata: { name: string } }).metadata.name
    assert.match(name, /^probe-[a-z0-9]{5}$/)
  })
})

describe('the fake kube-apiserver: watch bookmarks', () => {
  let fake: FakeKubeApi
  before(async () => {
    fake = await startFakeKubeApi({ serviceAccounts: [irsaSa], bookmarkIntervalMs: 200 })
  })
  after(() => fake.close())

  it('sends BOOKMARKs that carry only the resourceVersion when asked, and none otherwise', async () => {
    const list = (await (await get(fake, '/api/v1/serviceaccounts')).json()) as {
      metadata: { resourceVersion: string }
    }
    const rv = list.metadata.resourceVersion
    const base = `/api/v1/serviceaccounts?watch=1&timeoutSeconds=1&resourceVersion=${rv}`
    const events = watchLines(
      await within(
        (await get(fake, `${base}&allowWatchBookmarks=true`)).text(),
        10_000,
        'the watch',
      ),
    )
    assert.ok(events.length >= 1, 'at least one bookmark in a second at 200 ms')
    for (const event of events) {
      assert.equal(event.type, 'BOOKMARK')
      assert.deepEqual(event.object, {
        kind: 'ServiceAccount',
        apiVersion: 'v1',
        metadata: { resourceVersion: rv, creationTimestamp: null },
      })
    }
    const plain = watchLines(await within((await get(fake, base)).text(), 10_000, 'the watch'))
    assert.deepEqual(plain, [])
  })

  it('ends sendInitialEvents with a bookmark annotated k8s.io/initial-events-end', async () => {
    const path =
      '/api/v1/serviceaccounts?watch=1&timeoutSeconds=1&sendInitialEvents=true' +
      '&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true'
    const events = watchLines(await within((await get(fake, path)).text(), 10_000, 'the watch'))
    assert.equal(events[0]?.type, 'ADDED')
    assert.equal(events[0]?.object.metadata.name, 'irsa-sa')
    const end = events[1] as unknown as {
      type: string
      object: { metadata: Record<string, unknown> }
    }
    assert.equal(end.type, 'BOOKMARK')
    assert.deepEqual(end.object.metadata['annotations'], { 'k8s.io/initial-events-end': 'true' })
  })

  it('sends a bookmark 2 s before timeoutSeconds ends the watch', async () => {
    const quiet = await startFakeKubeApi({ serviceAccounts: [irsaSa] })
    try {
      const path =
        '/api/v1/serviceaccounts?watch=1&timeoutSeconds=3&allowWatchBookmarks=true&resourceVersion=1'
      const events = watchLines(await within((await get(quiet, path)).text(), 10_000, 'the watch'))
      assert.deepEqual(
        events.map((e) => e.type),
        ['BOOKMARK'],
      )
    } finally {
      await quiet.close()
    }
  })
})

describe('the fake kube-apiserver: LIST with labelSelector', () => {
  let fake: FakeKubeApi
  const slices = '/apis/discovery.k8s.io/v1/namespaces/irsa-system/endpointslices'
  before(async () => {
    fake = await startFakeKubeApi()
    for (const [name, service, tier] of [
      ['a', 'irsa-webhook', 'web'],
      ['b', 'other', 'web'],
      ['c', 'irsa-webhook', undefined],
    ] as const) {
      const labels = { 'kubernetes.io/service-name': service, ...(tier ? { tier } : {}) }
      fake.putObject(slices, { kind: 'EndpointSlice', metadata: { name, labels } })
    }
  })
  after(() => fake.close())

  const names = async (selector: string) => {
    const response = await get(fake, `${slices}?labelSelector=${encodeURIComponent(selector)}`)
    assert.equal(response.status, 200, selector)
    const list = (await response.json()) as { items: Array<{ metadata: { name: string } }> }
    return list.items.map((item) => item.metadata.name)
  }

  it('keeps only the items every requirement selects, as the storage layer does', async () => {
    assert.deepEqual(await names('kubernetes.io/service-name=irsa-webhook'), ['a', 'c'])
    assert.deepEqual(await names('kubernetes.io/service-name==irsa-webhook,tier=web'), ['a'])
    assert.deepEqual(await names('tier!=web'), ['c'])
    assert.deepEqual(await names('!tier'), ['c'])
    assert.deepEqual(await names('tier'), ['a', 'b'])
    assert.deepEqual(await names('kubernetes.io/service-name in (other, nothing)'), ['b'])
    assert.deepEqual(await names('tier notin (web)'), ['c'])
  })

  it('says plainly when a selector is beyond what the fake parses', async () => {
    const response = await get(fake, `${slices}?labelSelector=${encodeURIComponent('a=(b')}`)
    assert.equal(response.status, 400)
    assert.match((await statusOf(response)).message, /^fake-kube-api: unsupported labelSelector/)
  })
})
