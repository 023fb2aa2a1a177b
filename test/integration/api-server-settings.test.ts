/**
 * The webhook process and its API server, started the way a pod starts it (KUBERNETES_SERVICE_HOST/PORT, the token
 * and ca.crt in KUBE_SERVICEACCOUNT_DIR) against the loopback fake kube-apiserver over TLS:
 * - one set of in-cluster settings for `get` and `watch` mode; with no API server configured or a token missing, one
 *   clear start line and a /readyz body that says what was tried and what to set;
 * - watch mode when access goes: 403 faults on the ServiceAccount LIST/watch path stand in for a deleted
 *   ClusterRoleBinding. Small configured bounds, and every wait polls for a condition (no timed assertions).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { FAKE_TOKEN, type FakeKubeApi, startFakeKubeApi } from '../support/fake-kube-api.ts'
import { loadJson } from '../support/fixtures.ts'
import { type ChildServer, freePort, poll, send, spawnServer } from '../support/process.ts'

const irsaSa = loadJson('admission/serviceaccount-irsa-sa.json')
const review = readFileSync(
  new URL('../fixtures/admission/pod-irsa-single-container.json', import.meta.url),
  'utf8',
)
const MODES = ['get', 'watch'] as const
const LIST_PATH = '/api/v1/serviceaccounts'
const SA_PATH = '/api/v1/namespaces/e2e-cf073f76/serviceaccounts/irsa-sa'
const WAIT = 45_000

let fake: FakeKubeApi
let dir: string

before(async () => {
  fake = await startFakeKubeApi({ tls: true, serviceAccounts: [irsaSa] })
  dir = mkdtempSync(join(tmpdir(), 'irsa-settings-'))
  writeFileSync(join(dir, 'token'), FAKE_TOKEN)
  writeFileSync(join(dir, 'ca.crt'), fake.caPem ?? '')
  writeFileSync(join(dir, 'namespace'), 'irsa-system')
})
after(async () => {
  await fake.close()
  rmSync(dir, { recursive: true, force: true })
})

const knative = (mode: string) => ({
  K_SERVICE: 'irsa-webhook',
  HOST: '127.0.0.1',
  PORT: '0',
  SA_LOOKUP_MODE: mode,
})

/** Polls /readyz until its status is `status`; returns the body. */
const readyz = (server: ChildServer, status: number) =>
  poll(
    async () => {
      const reply = await send({ port: server.port }, 'GET', '/readyz')
      return reply.status === status ? reply.text : undefined
    },
    `/readyz ${status}`,
    WAIT,
  )

const errorLines = (server: ChildServer) =>
  server.logs.filter((line) => typeof line['level'] === 'number' && line['level'] >= 40)

describe('in-cluster settings in every lookup mode', () => {
  for (const mode of MODES) {
    it(`${mode} mode reaches the API server named by KUBERNETES_SERVICE_HOST/PORT with the token and CA of KUBE_SERVICEACCOUNT_DIR`, async (t) => {
      const port = new URL(fake.url).port
      const before = fake.requests.length
      const server = await spawnServer({
        env: {
          ...knative(mode),
          KUBERNETES_SERVICE_HOST: '127.0.0.1',
          KUBERNETES_SERVICE_PORT: port,
          KUBE_SERVICEACCOUNT_DIR: dir,
        },
      })
      t.after(() => server.stop())
      const listening = server.logs.find((line) => line['msg'] === 'listening')
      assert.equal(
        listening?.['serviceAccounts'],
        `${mode === 'get' ? 'GET' : 'watch'} https://127.0.0.1:${port}`,
      )
      assert.equal(await readyz(server, 200), 'ready')
      const reply = await send({ port: server.port }, 'POST', '/mutate?timeout=10s', review)
      assert.equal(reply.status, 200, reply.text)
      assert.equal(JSON.parse(reply.text).response.patchType, 'JSONPatch')
      const seen = fake.requests.slice(before)
      assert.ok(seen.length > 0)
      for (const request of seen) {
        assert.equal(request.headers.authorization, `Bearer ${FAKE_TOKEN}`, request.path)
      }
      if (mode === 'watch') assert.ok(seen.some((r) => r.path === '/api/v1/serviceaccounts'))
      assert.deepEqual(errorLines(server), [])
    })
  }
})

describe('no API server configured', () => {
  for (const mode of MODES) {
    it(`${mode} mode: one start line says what was tried and what to set, and /readyz's body says it too`, async (t) => {
      const server = await spawnServer({ env: knative(mode) })
      t.after(() => server.stop())
      const body = await readyz(server, 503)
      assert.match(body, /^not ready: no Kubernetes API server configured/)
      for (const name of ['KUBECONFIG', 'KUBERNETES_SERVICE_HOST', 'SERVICE_ACCOUNTS_FILE']) {
        assert.match(body, new RegExp(name))
      }
      const reply = await send({ port: server.port }, 'POST', '/mutate?timeout=10s', review)
      assert.equal(reply.status, 500)
      assert.match(reply.text, /no Kubernetes API server configured/)
      // The review's own warning names its failure; apart from it, exactly one line about the setup.
      const setup = errorLines(server).filter((line) => line['msg'] !== 'admission review failed')
      assert.equal(setup.length, 1, JSON.stringify(setup))
      assert.equal(setup[0]?.['msg'], 'no Kubernetes API server configured')
      assert.match(String(setup[0]?.['fix']), /KUBERNETES_SERVICE_HOST/)
    })

    it(`${mode} mode: a KUBE_SERVICEACCOUNT_DIR without a token is named once, at start, and in /readyz`, async (t) => {
      const empty = mkdtempSync(join(tmpdir(), 'irsa-settings-empty-'))
      t.after(() => rmSync(empty, { recursive: true, force: true }))
      writeFileSync(join(empty, 'ca.crt'), fake.caPem ?? '')
      const server = await spawnServer({
        env: {
          ...knative(mode),
          KUBERNETES_SERVICE_HOST: '127.0.0.1',
          KUBERNETES_SERVICE_PORT: new URL(fake.url).port,
          KUBE_SERVICEACCOUNT_DIR: empty,
        },
      })
      t.after(() => server.stop())
      const body = await readyz(server, 503)
      assert.match(body, new RegExp(`${join(empty, 'token')}`))
      assert.match(body, /KUBE_SERVICEACCOUNT_DIR/)
      const setup = errorLines(server)
      assert.equal(setup.length, 1, JSON.stringify(setup))
    })
  }
})

const watchEnv = (port: string) => ({
  K_SERVICE: 'irsa-webhook',
  HOST: '127.0.0.1',
  PORT: '0',
  SA_LOOKUP_MODE: 'watch',
  KUBERNETES_SERVICE_HOST: '127.0.0.1',
  KUBERNETES_SERVICE_PORT: port,
  KUBE_SERVICEACCOUNT_DIR: dir,
  SA_WATCH_TIMEOUT_SECONDS: '1',
  SA_WATCH_UNREADY_AFTER_SECONDS: '1',
})

/** A metric's value from /metrics (a series without labels). */
async function metric(server: ChildServer, name: string): Promise<number | undefined> {
  const text = (await send({ port: server.port }, 'GET', '/metrics')).text
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

const listErrorsAtLeast = (server: ChildServer, count: number) =>
  poll(
    async () => {
      const value = await metric(server, 'irsa_webhook_sa_informer_list_errors_total')
      return value !== undefined && value >= count ? value : undefined
    },
    `${count} failed LISTs on /metrics`,
    WAIT,
  )

const warnings = (server: ChildServer) =>
  server.logs.filter(
    (line) => line['msg'] === 'ServiceAccount informer cannot list/watch; retrying with backoff',
  )

describe('watch mode when the webhook loses list/watch access', () => {
  it('counts failed relists, turns unready past SA_WATCH_UNREADY_AFTER_SECONDS with the reason, warns once, and recovers', async (t) => {
    const seen = fake.requests.length
    const server = await spawnServer({ env: watchEnv(new URL(fake.url).port) })
    t.after(async () => {
      fake.clearFaults()
      await server.stop()
    })
    assert.equal(await readyz(server, 200), 'ready')
    // Ready follows the LIST; the watch request comes right after it.
    const watches = await poll(() => {
      const found = fake.requests
        .slice(seen)
        .filter((r) => r.path === LIST_PATH && r.query.get('watch') === 'true')
      return found.length > 0 ? found : undefined
    }, 'the first watch request')
    for (const w of watches) assert.equal(w.query.get('timeoutSeconds'), '1')
    assert.equal(await metric(server, 'irsa_webhook_sa_informer_list_errors_total'), 0)
    assert.equal(await metric(server, 'irsa_webhook_sa_informer_out_of_sync_seconds'), 0)

    // The ClusterRoleBinding is gone: every LIST and watch of ServiceAccounts, and the GET, answer 403.
    fake.fault({ path: LIST_PATH, status: 403 })
    fake.fault({ path: SA_PATH, status: 403 })
    // The running watch ends at its timeoutSeconds (1 s here); the re-watch and every relist then fail.
    await listErrorsAtLeast(server, 2)
    const body = await readyz(server, 503)
    assert.match(
      body,
      /^not ready: the ServiceAccount informer has been out of sync with https:\/\/127\.0\.0\.1:\d+ for \d+ s \(bound 1 s\)/,
    )
    assert.match(body, /HTTP 403/)
    const outOfSync = await metric(server, 'irsa_webhook_sa_informer_out_of_sync_seconds')
    assert.ok(outOfSync !== undefined && outOfSync > 0, String(outOfSync))

    // The documented caveat: a ServiceAccount already in the cache is still mutated (the GET would be refused).
    const reply = await send({ port: server.port }, 'POST', '/mutate?timeout=10s', review)
    assert.equal(reply.status, 200, reply.text)
    assert.equal(JSON.parse(reply.text).response.patchType, 'JSONPatch')

    // One warning for the whole streak, naming the fix; the repeats are debug lines.
    const warned = warnings(server)
    assert.equal(warned.length, 1, JSON.stringify(warned))
    assert.match(String(warned[0]?.['fix']), /list\/watch serviceaccounts/)

    fake.clearFaults()
    assert.equal(await readyz(server, 200), 'ready')
    assert.equal(await metric(server, 'irsa_webhook_sa_informer_out_of_sync_seconds'), 0)
    assert.ok(server.logs.some((line) => line['msg'] === 'ServiceAccount informer in sync again'))
  })

  it('says once, not once a second, that an unreachable API server cannot be listed, and /readyz says why', async (t) => {
    const port = await freePort()
    const server = await spawnServer({ env: watchEnv(String(port)) })
    t.after(() => server.stop())
    await listErrorsAtLeast(server, 3)
    const body = await readyz(server, 503)
    assert.match(
      body,
      /^not ready: waiting for the first LIST of ServiceAccounts from https:\/\/127\.0\.0\.1:\d+: \d+ failed in a row, the last with .*ECONNREFUSED/,
    )
    const warned = warnings(server)
    assert.equal(warned.length, 1, JSON.stringify(warned))
    assert.match(String(warned[0]?.['fix']), /KUBERNETES_SERVICE_HOST/)
  })
})
