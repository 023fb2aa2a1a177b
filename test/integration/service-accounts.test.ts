import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { KubeConfig } from '@kubernetes/client-node'
import { inClusterSettings } from '../../function/in-cluster.ts'
import {
  createApiServiceAccountSource,
  createWatchServiceAccountSource,
  inClusterKubeConfig,
} from '../../function/kube-client-node.ts'
import { createMetrics, type Metrics } from '../../function/metrics.ts'
import type { Lookup } from '../../function/review-pod.ts'
import { FAKE_TOKEN, type FakeKubeApi, startFakeKubeApi } from '../support/fake-kube-api.ts'
import { loadJson } from '../support/fixtures.ts'
import { freePort, poll, within } from '../support/process.ts'
import { admit, assertFailureStatus, createTestApp } from '../support/webhook.ts'

const fixture = (name: string) => loadJson(`admission/${name}`)
const irsaSa = fixture('serviceaccount-irsa-sa.json')
const review = fixture('pod-irsa-single-container.json')
const NS = 'e2e-cf073f76'
const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const SA_PATH = `/api/v1/namespaces/${NS}/serviceaccounts/irsa-sa`
const LATE_PATH = `/api/v1/namespaces/${NS}/serviceaccounts/late`
const late = {
  metadata: { name: 'late', namespace: NS, annotations: { 'api.vultr.com/role': ROLE } },
}
const LONG = 60_000
const BOUND = 15_000

let fake: FakeKubeApi

const kubeConfig = () => {
  const kc = new KubeConfig()
  kc.loadFromFile(fake.kubeconfigPath)
  return kc
}
const gets = (path: string) =>
  fake.requests.filter((r) => r.method === 'GET' && r.path === path).length
const lookup = (
  source: { get: (ns: string, name: string, s: AbortSignal) => Promise<Lookup> },
  name = 'irsa-sa',
  signal = AbortSignal.timeout(LONG),
) => within(source.get(NS, name, signal), BOUND, `lookup of ${name}`)
const apiSource = (
  options: { ttlMs?: number; timeoutMs?: number; now?: () => number; metrics?: Metrics } = {},
) => createApiServiceAccountSource(kubeConfig(), { ttlMs: 10_000, timeoutMs: 5_000, ...options })
const failedReason = (result: Lookup) => {
  assert.equal(result.kind, 'failed', JSON.stringify(result))
  return result.kind === 'failed' ? result.reason : ''
}

before(async () => {
  fake = await startFakeKubeApi({ serviceAccounts: [irsaSa] })
})
afterEach(() => {
  fake.clearFaults()
  fake.deleteServiceAccount(NS, 'late')
})
after(() => fake.close())

describe('GET source against a fake kube-apiserver', () => {
  it('finds a ServiceAccount and keeps only the api.vultr.com annotations', async () => {
    const result = await lookup(apiSource())
    assert.deepEqual(result, {
      kind: 'found',
      serviceAccount: {
        namespace: NS,
        name: 'irsa-sa',
        annotations: { 'api.vultr.com/role': ROLE },
      },
    })
  })

  it('answers not-found for a 404 and does not cache it', async () => {
    const source = apiSource()
    assert.deepEqual(await lookup(source, 'late'), { kind: 'not-found' })
    fake.setServiceAccount(late)
    const found = await lookup(source, 'late')
    assert.equal(found.kind, 'found')
    assert.equal(gets(LATE_PATH) >= 2, true)
  })

  for (const status of [403, 500]) {
    it(`fails with a reason naming HTTP ${status}`, async () => {
      fake.fault({ path: SA_PATH, status })
      assert.match(failedReason(await lookup(apiSource())), new RegExp(`${status}`))
    })
  }

  it('fails by its own deadline when the API is slower than that', async () => {
    fake.fault({ path: SA_PATH, delayMs: LONG })
    const result = await lookup(apiSource({ timeoutMs: 300 }))
    assert.match(failedReason(result), /deadline exceeded/)
  })

  it('fails by the review deadline when the review gives up first', async () => {
    fake.fault({ path: SA_PATH, delayMs: LONG })
    const result = await lookup(apiSource({ timeoutMs: LONG }), 'irsa-sa', AbortSignal.timeout(200))
    assert.match(failedReason(result), /deadline exceeded/)
  })

  it('fails when the connection is refused', async () => {
    const port = await freePort()
    const kc = new KubeConfig()
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    })
    const source = createApiServiceAccountSource(kc, { ttlMs: 0, timeoutMs: 5_000 })
    assert.ok(failedReason(await lookup(source)).length > 0)
  })

  it('fails when the body is cut mid-way, and recovers once the fault clears', async () => {
    const source = apiSource()
    fake.fault({ path: SA_PATH, destroy: 'mid-body', times: 1 })
    assert.ok(failedReason(await lookup(source)).length > 0)
    assert.equal((await lookup(source)).kind, 'found')
  })

  it('serves a second lookup within the TTL from cache and asks again after it', async () => {
    let now = 1_000_000
    const metrics = createMetrics()
    const source = apiSource({ ttlMs: 10_000, now: () => now, metrics })
    const before = gets(SA_PATH)
    assert.equal((await lookup(source)).kind, 'found')
    now += 9_999
    assert.equal((await lookup(source)).kind, 'found')
    assert.equal(gets(SA_PATH) - before, 1)
    now += 2
    assert.equal((await lookup(source)).kind, 'found')
    assert.equal(gets(SA_PATH) - before, 2)
    // Counted as plain numbers and handed to prom-client when scraped; a second scrape adds nothing twice.
    for (let scrape = 0; scrape < 2; scrape++) {
      const text = await metrics.registry.metrics()
      assert.match(text, /^irsa_webhook_sa_cache_total\{result="hit"\} 1$/m)
      assert.match(text, /^irsa_webhook_sa_cache_total\{result="miss"\} 2$/m)
    }
  })

  it('shares one GET among concurrent lookups of one ServiceAccount', async () => {
    fake.fault({ path: SA_PATH, delayMs: 300, times: 1 })
    const source = apiSource()
    const before = gets(SA_PATH)
    const results = await Promise.all([lookup(source), lookup(source), lookup(source)])
    assert.deepEqual(
      results.map((r) => r.kind),
      ['found', 'found', 'found'],
    )
    assert.equal(gets(SA_PATH) - before, 1)
  })

  it('does not cancel the shared GET when one waiting review gives up early', async () => {
    fake.fault({ path: SA_PATH, delayMs: 500, times: 1 })
    const source = apiSource()
    const before = gets(SA_PATH)
    const early = new AbortController()
    const first = lookup(source, 'irsa-sa', early.signal)
    const second = lookup(source)
    early.abort()
    assert.match(failedReason(await first), /deadline exceeded/)
    assert.equal((await second).kind, 'found')
    assert.equal(gets(SA_PATH) - before, 1)
  })
})

describe('watch source against a fake kube-apiserver', () => {
  const watchSource = (watchTimeoutSeconds = 300) => {
    const errors: string[] = []
    const source = createWatchServiceAccountSource(kubeConfig(), {
      ttlMs: 0,
      timeoutMs: 5_000,
      server: fake.url,
      watchTimeoutSeconds,
      unreadyAfterMs: 0,
      onError: (reason) => errors.push(reason),
    })
    return { source, errors }
  }

  it('is ready only after it started, and serves a later ServiceAccount from its cache', async (t) => {
    const { source } = watchSource()
    t.after(() => source.close())
    assert.equal(source.ready(), false)
    await within(source.start(), BOUND, 'the informer to start')
    assert.equal(source.ready(), true)
    fake.setServiceAccount(late)
    // With every GET of it failing, a found answer can only come from the informer's cache.
    fake.fault({ path: LATE_PATH, status: 500 })
    await poll(
      async () => ((await lookup(source, 'late')).kind === 'found' ? true : undefined),
      'the watch event',
    )
    fake.clearFaults()
    const before = gets(LATE_PATH)
    assert.equal((await lookup(source, 'late')).kind, 'found')
    assert.equal(gets(LATE_PATH), before)
  })

  it('finds a ServiceAccount created a moment before the lookup through the GET fallback', async (t) => {
    const { source } = watchSource()
    t.after(() => source.close())
    await within(source.start(), BOUND, 'the informer to start')
    const before = gets(LATE_PATH)
    fake.setServiceAccount(late)
    // Same tick: the watch event cannot have been delivered yet.
    const result = await lookup(source, 'late')
    assert.equal(result.kind, 'found')
    assert.equal(gets(LATE_PATH) - before, 1)
  })

  it('answers through the GET fallback while the first LIST is still held back', async (t) => {
    fake.fault({ path: '/api/v1/serviceaccounts', delayMs: LONG, times: 1 })
    const { source } = watchSource()
    t.after(() => source.close())
    const started = source.start()
    started.catch(() => undefined)
    const before = gets(SA_PATH)
    assert.equal((await lookup(source)).kind, 'found')
    assert.equal(source.ready(), false)
    assert.equal(gets(SA_PATH) - before, 1)
  })

  it('relists after a failed watch and drops what was deleted while it could not watch', async (t) => {
    fake.setServiceAccount(late)
    const { source, errors } = watchSource(1)
    t.after(() => source.close())
    await within(source.start(), BOUND, 'the informer to start')
    assert.ok(source.cached?.(NS, 'late'))
    // Access goes for the re-watch (at the 1 s watch timeout) and the first relist, then comes back.
    fake.fault({ path: '/api/v1/serviceaccounts', status: 403, times: 2 })
    await poll(() => (errors.length >= 1 ? true : undefined), 'the re-watch to fail')
    fake.deleteServiceAccount(NS, 'late')
    // Until a relist succeeds the last good LIST answers, 'late' included.
    assert.ok(source.cached?.(NS, 'late'))
    await poll(
      () => (source.cached?.(NS, 'late') === undefined ? true : undefined),
      'a relist without the deleted ServiceAccount',
    )
    assert.equal(errors.length, 2, errors.join('; '))
    assert.match(errors[0] ?? '', /HTTP 403/)
    assert.equal(source.ready(), true)
    assert.equal((await lookup(source)).kind, 'found')
  })

  it('survives a re-watch it cannot build (ca.crt gone) as a failed watch, and relists once the file is back', async (t) => {
    // client-node reads the CA file for every request; ListWatch re-watches from a callback nobody awaits, so a
    // rejected watch() there was an unhandled rejection, which ends the process.
    const tls = await startFakeKubeApi({ tls: true, serviceAccounts: [irsaSa] })
    const dir = mkdtempSync(join(tmpdir(), 'irsa-watch-ca-'))
    t.after(async () => {
      await tls.close()
      rmSync(dir, { recursive: true, force: true })
    })
    writeFileSync(join(dir, 'token'), FAKE_TOKEN)
    writeFileSync(join(dir, 'ca.crt'), tls.caPem ?? '')
    const settings = inClusterSettings('127.0.0.1', Number(new URL(tls.url).port), dir)
    const errors: string[] = []
    let recovered = 0
    const source = createWatchServiceAccountSource(inClusterKubeConfig(settings).kubeConfig, {
      ttlMs: 0,
      timeoutMs: 5_000,
      server: tls.url,
      watchTimeoutSeconds: 1,
      unreadyAfterMs: 0,
      onError: (reason) => errors.push(reason),
      onRecovered: () => recovered++,
    })
    t.after(() => source.close())
    await within(source.start(), BOUND, 'the informer to start')
    assert.equal(source.ready(), true)
    rmSync(settings.caFile)
    await poll(() => (errors.length >= 1 ? true : undefined), 'the re-watch to fail')
    assert.match(errors[0] ?? '', /ENOENT/)
    assert.ok(source.cached?.(NS, 'irsa-sa'))
    writeFileSync(settings.caFile, tls.caPem ?? '')
    await poll(() => (recovered > 0 ? true : undefined), 'a relist once ca.crt is back')
    assert.equal(source.ready(), true)
  })

  it('is not ready after a failed first LIST, and becomes ready once its restart lists', async (t) => {
    fake.fault({ path: '/api/v1/serviceaccounts', status: 403, times: 1 })
    const { source, errors } = watchSource()
    t.after(() => source.close())
    await within(source.start(), BOUND, 'the informer start to return')
    assert.equal(source.ready(), false)
    assert.equal(errors.length >= 1, true)
    await poll(() => (source.ready() ? true : undefined), 'the informer to restart and list')
  })
})

describe('the app over a fake kube-apiserver', () => {
  const post = async (query: string) => {
    const { app, logger } = createTestApp(apiSource({ ttlMs: 0, timeoutMs: LONG }), {
      LOOKUP_TIMEOUT_MS: '30000',
    })
    const response = await within(
      Promise.resolve(
        app.request(`/mutate${query}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(review),
        }),
      ),
      BOUND,
      'the webhook answer',
    )
    // biome-ignore lint/suspicious/noExplicitAny: wire JSON
    const body: any = await response.json()
    return { status: response.status, body, logger }
  }

  it('mutates the real fixture pod with the same patch as the in-process app', async () => {
    const { status, body } = await post('?timeout=10s')
    assert.equal(status, 200)
    const expected = await admit(review, [irsaSa])
    assert.equal(body.response.uid, review.request.uid)
    assert.equal(body.response.patch, expected.body.response.patch)
    assert.ok(expected.patch.length > 0)
  })

  it('answers HTTP 500 when the kube-apiserver answers 500', async () => {
    fake.fault({ path: SA_PATH, status: 500 })
    const { status, body } = await post('?timeout=10s')
    assert.equal(status, 500)
    assertFailureStatus(body, 500, 'InternalError', /irsa-sa/)
  })

  it('answers HTTP 500 within the ?timeout= budget when the kube-apiserver is slow', async () => {
    // The source's own timeout and the fake's delay are a minute: only the 2 s budget can end this.
    fake.fault({ path: SA_PATH, delayMs: LONG })
    const { status, body, logger } = await post('?timeout=2s')
    assert.equal(status, 500)
    assertFailureStatus(body, 500, 'InternalError', /deadline exceeded/)
    assert.equal(logger.lines.at(-1)?.level, 'warn')
  })
})
