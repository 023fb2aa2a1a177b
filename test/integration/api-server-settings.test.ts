/**
 * One set of in-cluster settings for every lookup mode: the webhook process started the way a pod starts it
 * (KUBERNETES_SERVICE_HOST/PORT, the token and ca.crt in KUBE_SERVICEACCOUNT_DIR) against the loopback fake
 * kube-apiserver over TLS, in `get` and in `watch` mode; and, with no API server configured or a token missing, one
 * clear start line and a /readyz body that says what was tried and what to set.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { FAKE_TOKEN, type FakeKubeApi, startFakeKubeApi } from '../support/fake-kube-api.ts'
import { loadJson } from '../support/fixtures.ts'
import { type ChildServer, poll, send, spawnServer } from '../support/process.ts'

const irsaSa = loadJson('admission/serviceaccount-irsa-sa.json')
const review = readFileSync(
  new URL('../fixtures/admission/pod-irsa-single-container.json', import.meta.url),
  'utf8',
)
const MODES = ['get', 'watch'] as const

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
  poll(async () => {
    const reply = await send({ port: server.port }, 'GET', '/readyz')
    return reply.status === status ? reply.text : undefined
  }, `/readyz ${status}`)

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
