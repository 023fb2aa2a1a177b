/**
 * The HTTP contract, in process (`app.request`, no sockets): envelope, uid echo, base64 patches, 4xx for bad
 * input, 5xx when the ServiceAccount lookup fails or hangs, the path secret, health, readiness and metrics.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Lookup, ServiceAccountSource } from '../../function/review-pod.ts'
import { createStaticServiceAccountSource } from '../../function/service-accounts.ts'
import { loadJson, podReview } from '../support/fixtures.ts'
import { assertFailureStatus, createTestApp, decodePatch } from '../support/webhook.ts'

const irsaSa = loadJson('admission/serviceaccount-irsa-sa.json')
const single = () => loadJson('admission/pod-irsa-single-container.json')

function build(
  options: { source?: ServiceAccountSource; env?: Record<string, string>; ready?: boolean } = {},
) {
  const ready = options.ready ?? true
  return createTestApp(options.source ?? [irsaSa], options.env, () => ready)
}

// biome-ignore lint/suspicious/noExplicitAny: responses are wire JSON
type JsonResponse = Omit<Response, 'json'> & { json(): Promise<any> }

function post(
  app: ReturnType<typeof build>['app'],
  body: unknown,
  init: { path?: string; type?: string } = {},
): Promise<JsonResponse> {
  return app.request(init.path ?? '/mutate?timeout=10s', {
    method: 'POST',
    headers: { 'content-type': init.type ?? 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  }) as Promise<Response> as Promise<JsonResponse>
}

describe('POST /mutate envelope', () => {
  it('echoes apiVersion, kind and uid and sends a base64 JSONPatch when mutating', async () => {
    const { app } = build()
    const review = single()
    const response = await post(app, review)
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /application\/json/)
    const body = await response.json()
    assert.equal(body.apiVersion, 'admission.k8s.io/v1')
    assert.equal(body.kind, 'AdmissionReview')
    assert.equal(body.response.uid, review.request.uid)
    assert.equal(body.response.allowed, true)
    assert.equal(body.response.patchType, 'JSONPatch')
    assert.match(body.response.patch, /^[A-Za-z0-9+/]+=*$/)
    assert.ok(decodePatch(body.response).length > 0)
  })

  it('sends neither patch nor patchType when there is nothing to patch', async () => {
    const { app } = build()
    const body = await (await post(app, loadJson('admission/pod-plain-sa.json'))).json()
    assert.equal(body.response.allowed, true)
    assert.equal('patch' in body.response, false)
    assert.equal('patchType' in body.response, false)
    assert.equal(
      'warnings' in body.response,
      true,
      'plain-sa is not in the source: a warning names it',
    )
  })

  it('allows anything that is not a Pod CREATE without looking anything up', async () => {
    let lookups = 0
    const source: ServiceAccountSource = {
      get: async () => {
        lookups += 1
        return { kind: 'not-found' }
      },
    }
    const { app } = build({ source })
    for (const change of [
      { operation: 'UPDATE' },
      { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
      { subResource: 'ephemeralcontainers' },
    ]) {
      const review = single()
      Object.assign(review.request, change)
      const body = await (await post(app, review)).json()
      assert.equal(body.response.allowed, true)
      assert.equal(body.response.patch, undefined)
    }
    assert.equal(lookups, 0)
  })

  it('answers a dry-run request like any other and logs dryRun', async () => {
    const { app, logger } = build()
    const body = await (await post(app, loadJson('admission/pod-irsa-dryrun.json'))).json()
    assert.equal(body.response.patchType, 'JSONPatch')
    assert.deepEqual(
      logger.lines.map((line) => (line.fields as { dryRun: boolean }).dryRun),
      [true],
    )
  })

  it('denies an invalid role with allowed:false and a message naming the ServiceAccount and annotation', async () => {
    const bad = structuredClone(irsaSa)
    bad.metadata.annotations['api.vultr.com/role'] = 'not a role'
    const { app } = build({ source: createStaticServiceAccountSource([bad]) })
    const body = await (await post(app, single())).json()
    assert.equal(body.response.allowed, false)
    assert.equal(body.response.status.code, 403)
    assert.match(
      body.response.status.message,
      /e2e-cf073f76\/irsa-sa annotation api\.vultr\.com\/role/,
    )
    assert.match(body.response.status.message, /"not a role"/)
    assert.equal(body.response.patch, undefined)
  })
})

describe('POST /mutate bad input', () => {
  const cases: { name: string; body: unknown; status: number; message: RegExp; type?: string }[] = [
    {
      name: 'a body that is not JSON',
      body: '{"apiVersion":',
      status: 400,
      message: /not valid JSON/,
    },
    { name: 'a JSON array', body: [], status: 400, message: /JSON object/ },
    {
      name: 'a v1beta1 review',
      body: { ...single(), apiVersion: 'admission.k8s.io/v1beta1' },
      status: 400,
      message: /apiVersion: must be admission\.k8s\.io\/v1/,
    },
    {
      name: 'a wrong kind',
      body: { ...single(), kind: 'Pod' },
      status: 400,
      message: /kind: must be AdmissionReview/,
    },
    {
      name: 'no request',
      body: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' },
      status: 400,
      message: /request/,
    },
    {
      name: 'an empty uid',
      body: { ...single(), request: { ...single().request, uid: '' } },
      status: 400,
      message: /request\.uid: must be a non-empty string/,
    },
    {
      name: 'a pod whose containers are not a list',
      body: {
        ...single(),
        request: { ...single().request, object: { spec: { containers: 'app' } } },
      },
      status: 400,
      message: /request\.object\.spec\.containers/,
    },
    {
      name: 'a wrong content type',
      body: single(),
      type: 'text/plain',
      status: 415,
      message: /Content-Type must be application\/json/,
    },
  ]
  for (const testCase of cases) {
    it(`answers ${testCase.status} with a message for ${testCase.name}`, async () => {
      const { app } = build()
      const response = await post(
        app,
        testCase.body,
        testCase.type === undefined ? {} : { type: testCase.type },
      )
      assert.equal(response.status, testCase.status)
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/)
      const reason = testCase.status === 415 ? 'UnsupportedMediaType' : 'BadRequest'
      assertFailureStatus(await response.json(), testCase.status, reason, testCase.message)
    })
  }

  it('answers 413 for a body over BODY_LIMIT_BYTES', async () => {
    const { app } = build({ env: { BODY_LIMIT_BYTES: '2048' } })
    const review = single()
    review.request.object.metadata.annotations = { big: 'x'.repeat(4096) }
    const response = await post(app, review)
    assert.equal(response.status, 413)
    assertFailureStatus(
      await response.json(),
      413,
      'RequestEntityTooLarge',
      /exceeds the limit of 2048 bytes/,
    )
  })
})

describe('ServiceAccount lookup failures', () => {
  it('answers HTTP 500 naming the ServiceAccount when the lookup fails, so failurePolicy decides', async () => {
    const source: ServiceAccountSource = {
      get: async () => ({ kind: 'failed', reason: 'Kubernetes API answered HTTP 403' }),
    }
    const { app, metrics } = build({ source })
    const response = await post(app, single())
    assert.equal(response.status, 500)
    assertFailureStatus(
      await response.json(),
      500,
      'InternalError',
      /e2e-cf073f76\/irsa-sa failed: Kubernetes API answered HTTP 403/,
    )
    assert.match(
      await metrics.registry.metrics(),
      /irsa_webhook_decisions_total\{outcome="lookup-failed"\} 1/,
    )
  })

  it('answers HTTP 500 when a lookup outlives the budget derived from ?timeout=', async () => {
    let seen: AbortSignal | undefined
    const source: ServiceAccountSource = {
      // Resolves only when the webhook gives up, as the real sources do.
      get: (_ns, _name, signal): Promise<Lookup> => {
        seen = signal
        return new Promise((resolve) =>
          signal.addEventListener('abort', () =>
            resolve({ kind: 'failed', reason: 'deadline exceeded' }),
          ),
        )
      },
    }
    const { app } = build({ source })
    const response = await post(app, single(), { path: '/mutate?timeout=1s' })
    assert.equal(response.status, 500)
    assertFailureStatus(await response.json(), 500, 'InternalError', /deadline exceeded/)
    assert.equal(seen?.aborted, true)
  })
})

describe('cached answers', () => {
  it("uses a source's cached answer without calling get (no deadline is armed for a cache hit)", async () => {
    const calls = { cached: 0, get: 0 }
    const source: ServiceAccountSource = {
      cached: () => {
        calls.cached += 1
        return {
          kind: 'found',
          serviceAccount: {
            namespace: 'e2e-cf073f76',
            name: 'irsa-sa',
            annotations: { 'api.vultr.com/role': '775a6be6-45cd-4f19-94f5-6e4f96f093ec' },
          },
        }
      },
      get: async () => {
        calls.get += 1
        return { kind: 'failed', reason: 'get must not be called' }
      },
    }
    const body = await (await post(build({ source }).app, single())).json()
    assert.equal(body.response.patchType, 'JSONPatch')
    assert.deepEqual(calls, { cached: 1, get: 0 })
  })
})

describe('path secret', () => {
  const token = 'a'.repeat(32)
  it('mutates only on /mutate/<MUTATE_PATH_TOKEN>', async () => {
    const { app } = build({ env: { MUTATE_PATH_TOKEN: token } })
    assert.equal((await post(app, single(), { path: '/mutate' })).status, 404)
    assert.equal((await post(app, single(), { path: `/mutate/${'b'.repeat(32)}` })).status, 404)
    assert.equal((await post(app, single(), { path: '/mutate/short' })).status, 404)
    const response = await post(app, single(), { path: `/mutate/${token}?timeout=10s` })
    assert.equal(response.status, 200)
    assert.equal((await response.json()).response.patchType, 'JSONPatch')
  })

  it('answers a wrong token with a NotFound Status that does not echo the token', async () => {
    const { app } = build({ env: { MUTATE_PATH_TOKEN: token } })
    const response = await post(app, single(), { path: `/mutate/${'b'.repeat(32)}` })
    assert.equal(response.status, 404)
    const message = assertFailureStatus(await response.json(), 404, 'NotFound', /^not found$/)
    assert.doesNotMatch(message, /b{32}/)
  })
})

describe('error bodies kube-apiserver can read', () => {
  it('answers an unknown path with a NotFound Status naming the method and path', async () => {
    const response = await post(build().app, single(), { path: '/mutatex' })
    assert.equal(response.status, 404)
    assertFailureStatus(await response.json(), 404, 'NotFound', /^no route for POST \/mutatex$/)
  })

  it('answers an unexpected exception with an InternalError Status that hides its text', async () => {
    const source: ServiceAccountSource = {
      get: async () => {
        throw new Error('secret detail')
      },
    }
    const { app, logger } = build({ source })
    const response = await post(app, single())
    assert.equal(response.status, 500)
    assertFailureStatus(await response.json(), 500, 'InternalError', /^internal error$/)
    assert.equal(logger.lines.at(-1)?.level, 'error')
  })

  it('leaves health and readiness answers as plain text', async () => {
    const response = await build({ ready: false }).app.request('/readyz')
    assert.equal(response.status, 503)
    assert.equal(await response.text(), 'not ready')
  })
})

describe('health, readiness, metrics, logs', () => {
  it('serves /health and /healthz, and /readyz follows readiness', async () => {
    const ready = build()
    for (const path of ['/health', '/healthz', '/readyz']) {
      assert.equal((await ready.app.request(path)).status, 200, path)
    }
    assert.equal((await build({ ready: false }).app.request('/readyz')).status, 503)
  })

  it('counts decisions and latency in /metrics and logs one line per decision', async () => {
    const { app, logger } = build()
    await post(app, single())
    await post(app, loadJson('admission/pod-plain-sa.json'))
    const text = await (await app.request('/metrics')).text()
    assert.match(text, /irsa_webhook_decisions_total\{outcome="mutated"\} 1/)
    assert.match(text, /irsa_webhook_decisions_total\{outcome="sa-not-found"\} 1/)
    assert.match(text, /irsa_webhook_request_duration_seconds_count\{outcome="mutated"\} 1/)
    assert.equal(logger.lines.length, 2)
    const fields = logger.lines[0]?.fields as Record<string, unknown>
    assert.equal(fields['uid'], single().request.uid)
    assert.equal(fields['namespace'], 'e2e-cf073f76')
    assert.equal(fields['pod'], 'irsa-single')
    assert.equal(fields['serviceAccount'], 'e2e-cf073f76/irsa-sa')
    assert.equal(fields['outcome'], 'mutated')
    assert.equal(typeof fields['ms'], 'number')
  })

  it('logs generateName for pods that have no name yet', async () => {
    const { app, logger } = build()
    await post(app, loadJson('admission/pod-generate-name.json'))
    const fields = logger.lines[0]?.fields as Record<string, unknown>
    assert.equal(fields['pod'], undefined)
    assert.equal(fields['generateName'], 'irsa-gen-')
  })

  it('keeps every warning under 120 characters', async () => {
    const pod = podReview({
      metadata: { name: 'p', namespace: 'e2e-cf073f76' },
      spec: {
        serviceAccountName: 'irsa-sa',
        containers: [{ name: 'c'.repeat(63), env: [{ name: 'AWS_ACCESS_KEY_ID', value: 'x' }] }],
      },
    } as never)
    const body = await (await post(build().app, pod)).json()
    assert.ok(body.response.warnings.length > 0)
    for (const warning of body.response.warnings) assert.ok(warning.length <= 120, warning)
  })
})
