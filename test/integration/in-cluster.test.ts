/**
 * The in-cluster path: the small node:https client (function/in-cluster.ts) with the pod's own token and CA, against
 * the loopback fake kube-apiserver over TLS — found, 404, 403/500, deadline, refused, cut body, token rotation,
 * certificate verification — and the webhook process started the way a pod starts it (KUBERNETES_SERVICE_HOST).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import {
  createInClusterClient,
  type InClusterOptions,
  inClusterSettings,
} from '../../function/in-cluster.ts'
import type { Lookup } from '../../function/review-pod.ts'
import { inClusterFetcher } from '../../function/service-accounts.ts'
import { FAKE_TOKEN, type FakeKubeApi, startFakeKubeApi } from '../support/fake-kube-api.ts'
import { loadJson } from '../support/fixtures.ts'
import { freePort, send, spawnServer, within } from '../support/process.ts'
import { createTestCertificates } from '../support/tls.ts'

const fixture = (name: string) => loadJson(`admission/${name}`)
const irsaSa = fixture('serviceaccount-irsa-sa.json')
const NS = 'e2e-cf073f76'
const SA_PATH = `/api/v1/namespaces/${NS}/serviceaccounts/irsa-sa`

let fake: FakeKubeApi
let dir: string

/** The settings a pod with its ServiceAccount directory at `saDir` has. */
const settings = (saDir: string) =>
  inClusterSettings('127.0.0.1', Number(new URL(fake.url).port), saDir)
const options = (extra: Partial<InClusterOptions> = {}): InClusterOptions => ({
  ...settings(dir),
  ...extra,
})
const lookup = (extra: Partial<InClusterOptions> = {}, signal = AbortSignal.timeout(5_000)) => {
  const client = createInClusterClient(options(extra))
  return within(inClusterFetcher(client)(NS, 'irsa-sa', signal), 15_000, 'lookup').finally(() =>
    client.close(),
  )
}
const reason = (result: Lookup) =>
  result.kind === 'failed' ? result.reason : JSON.stringify(result)

before(async () => {
  fake = await startFakeKubeApi({ tls: true, serviceAccounts: [irsaSa] })
  dir = mkdtempSync(join(tmpdir(), 'irsa-sa-dir-'))
  writeFileSync(join(dir, 'token'), `${FAKE_TOKEN}\n`)
  writeFileSync(join(dir, 'ca.crt'), fake.caPem ?? '')
})
afterEach(() => {
  fake.clearFaults()
  writeFileSync(join(dir, 'token'), `${FAKE_TOKEN}\n`)
})
after(async () => {
  await fake.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('in-cluster ServiceAccount GET', () => {
  it('finds the ServiceAccount over TLS with the bearer token, keeping only our annotations', async () => {
    assert.deepEqual(await lookup(), {
      kind: 'found',
      serviceAccount: {
        namespace: NS,
        name: 'irsa-sa',
        annotations: { 'api.vultr.com/role': '775a6be6-45cd-4f19-94f5-6e4f96f093ec' },
      },
    })
    const request = fake.requests.findLast((r) => r.path === SA_PATH)
    assert.equal(request?.headers.authorization, `Bearer ${FAKE_TOKEN}`)
  })

  it('answers not-found for a 404, and failed naming the status for 403 and 500', async () => {
    const client = createInClusterClient(options())
    try {
      const fetcher = inClusterFetcher(client)
      assert.deepEqual(await fetcher(NS, 'missing', AbortSignal.timeout(5_000)), {
        kind: 'not-found',
      })
      for (const status of [403, 500]) {
        fake.fault({ path: SA_PATH, status, times: 1 })
        const result = await fetcher(NS, 'irsa-sa', AbortSignal.timeout(5_000))
        assert.match(reason(result), new RegExp(`HTTP ${status}`))
      }
    } finally {
      client.close()
    }
  })

  it('fails with "deadline exceeded" when the API is slower than the signal', async () => {
    fake.fault({ path: SA_PATH, delayMs: 30_000 })
    assert.match(reason(await lookup({}, AbortSignal.timeout(200))), /deadline exceeded/)
  })

  it('fails when the body is cut mid-way, and succeeds again once the fault clears', async () => {
    fake.fault({ path: SA_PATH, destroy: 'mid-body', times: 1 })
    assert.equal((await lookup()).kind, 'failed')
    assert.equal((await lookup()).kind, 'found')
  })

  it('fails when the connection is refused', async () => {
    const port = await freePort()
    assert.match(reason(await lookup({ port })), /ECONNREFUSED/)
  })

  it('refuses a server whose certificate is not signed by ca.crt', async () => {
    const other = createTestCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })
    const otherDir = mkdtempSync(join(tmpdir(), 'irsa-sa-other-'))
    try {
      writeFileSync(join(otherDir, 'token'), FAKE_TOKEN)
      writeFileSync(join(otherDir, 'ca.crt'), other.caPem)
      const result = await lookup(settings(otherDir))
      assert.equal(result.kind, 'failed')
      assert.match(reason(result), /certificate/i)
    } finally {
      rmSync(otherDir, { recursive: true, force: true })
      rmSync(other.dir, { recursive: true, force: true })
    }
  })

  it('re-reads a rotated token once the cached one is older than tokenMaxAgeMs', async () => {
    let clock = 0
    const client = createInClusterClient(options({ tokenMaxAgeMs: 60_000, now: () => clock }))
    try {
      const fetcher = inClusterFetcher(client)
      const get = () => fetcher(NS, 'irsa-sa', AbortSignal.timeout(5_000))
      writeFileSync(join(dir, 'token'), 'rotated-but-wrong')
      assert.equal((await get()).kind, 'found', 'still the cached token before it is due')
      clock = 60_000
      assert.match(reason(await get()), /HTTP 401/)
      writeFileSync(join(dir, 'token'), FAKE_TOKEN)
      clock = 120_000
      assert.equal((await get()).kind, 'found')
    } finally {
      client.close()
    }
  })

  it('says which file is missing when the ServiceAccount directory is incomplete', () => {
    const empty = mkdtempSync(join(tmpdir(), 'irsa-sa-empty-'))
    try {
      assert.throws(() => createInClusterClient(options(settings(empty))), /ca\.crt/)
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })
})

describe('webhook process in a pod-like environment', () => {
  it('uses the in-cluster client when KUBERNETES_SERVICE_HOST is set and no kubeconfig is', async () => {
    const server = await spawnServer({
      env: {
        K_SERVICE: 'irsa-webhook',
        PORT: '0',
        HOST: '127.0.0.1',
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: new URL(fake.url).port,
        KUBE_SERVICEACCOUNT_DIR: dir,
      },
    })
    try {
      const listening = server.logs.find((line) => line['msg'] === 'listening')
      assert.equal(
        listening?.['serviceAccounts'],
        `GET https://127.0.0.1:${new URL(fake.url).port}`,
      )
      const body = readFileSync(
        new URL('../fixtures/admission/pod-irsa-single-container.json', import.meta.url),
        'utf8',
      )
      const reply = await send({ port: server.port }, 'POST', '/mutate?timeout=10s', body)
      assert.equal(reply.status, 200)
      assert.equal(JSON.parse(reply.text).response.patchType, 'JSONPatch')
    } finally {
      await server.stop()
    }
  })
})
