/**
 * Kube API faults, end to end: the real server process (handler.ts, SA_CACHE_TTL_SECONDS=0 so every review GETs,
 * LOOKUP_TIMEOUT_MS=1000) looks ServiceAccounts up through a loopback TCP proxy in front of the fake
 * kube-apiserver. Refused connections, HTTP 500/403, an answer after the deadline and a connection dropped before
 * or in the middle of the answer all give the documented outcome (HTTP 500 with a message: the webhook's
 * failurePolicy decides) inside the apiserver's deadline, and the next review after the API recovers is mutated.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { FAKE_TOKEN, type FakeKubeApi, startFakeKubeApi } from '../support/fake-kube-api.ts'
import { loadJson } from '../support/fixtures.ts'
import { type ChildServer, freePort, poll, spawnServer } from '../support/process.ts'
import { assertFailureStatus } from '../support/webhook.ts'

const REVIEW = loadJson('admission/pod-irsa-single-container.json')
const SA_PATH = /\/serviceaccounts\/irsa-sa$/

/** A TCP proxy on a fixed loopback port that can refuse connections (listener closed) and come back. */
class ApiProxy {
  port = 0
  #server: Server | undefined
  readonly #sockets = new Set<Socket>()
  readonly target: number
  constructor(target: number) {
    this.target = target
  }

  async listen(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target, '127.0.0.1')
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket)
        socket.on('close', () => this.#sockets.delete(socket))
        socket.on('error', () => undefined)
      }
      client.pipe(upstream).pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve))
    const address = server.address()
    this.port = typeof address === 'object' && address !== null ? address.port : 0
    this.#server = server
  }

  async refuse(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const socket of this.#sockets) socket.destroy()
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  }
}

let api: FakeKubeApi
let proxy: ApiProxy
let webhook: ChildServer
let dir: string

before(async () => {
  api = await startFakeKubeApi({
    serviceAccounts: [loadJson('admission/serviceaccount-irsa-sa.json')],
  })
  proxy = new ApiProxy(Number(new URL(api.url).port))
  await proxy.listen()
  dir = mkdtempSync(join(tmpdir(), 'irsa-faults-'))
  const kubeconfig = join(dir, 'kubeconfig.yaml')
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: http://127.0.0.1:${proxy.port}\n    insecure-skip-tls-verify: true\nusers:\n- name: p\n  user:\n    token: ${FAKE_TOKEN}\ncontexts:\n- name: p\n  context:\n    cluster: p\n    user: p\ncurrent-context: p\n`,
  )
  webhook = await spawnServer({
    env: {
      K_SERVICE: 'faults',
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      KUBECONFIG: kubeconfig,
      SA_CACHE_TTL_SECONDS: '0',
      LOOKUP_TIMEOUT_MS: '1000',
    },
  })
})

after(async () => {
  await webhook?.stop()
  await proxy?.refuse()
  await api?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** POSTs the review as kube-apiserver does (`?timeout=10s`) and gives up, like it, after those 10 s. */
async function review(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${webhook.port}/mutate?timeout=10s`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(REVIEW),
    signal: AbortSignal.timeout(10_000),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

async function assertMutated(): Promise<void> {
  const { status, body } = await review()
  assert.equal(status, 200)
  const response = body['response'] as { uid: string; patchType?: string }
  assert.equal(response.uid, REVIEW.request.uid)
  assert.equal(response.patchType, 'JSONPatch')
}

async function assertLookupFailed(reason: RegExp, unlike?: RegExp): Promise<void> {
  const { status, body } = await review()
  assert.equal(status, 500, JSON.stringify(body))
  const message = assertFailureStatus(
    body,
    500,
    'InternalError',
    /looking up ServiceAccount e2e-cf073f76\/irsa-sa failed/,
  )
  assert.match(message, reason)
  if (unlike !== undefined) assert.doesNotMatch(message, unlike)
}

/** A dropped connection is reported as such: not as an HTTP status, not as our own deadline. */
const NOT_STATUS_OR_DEADLINE = /HTTP \d{3}|deadline exceeded/

describe('kube API faults', () => {
  it('mutates while the API is healthy, and logs every lookup failure as lookup-failed', async () => {
    await assertMutated()
    await assertLookupFailedWith(() => api.fault({ path: SA_PATH, status: 500, times: 1 }), /500/)
    const line = await poll(
      () => webhook.logs.find((entry) => entry['outcome'] === 'lookup-failed'),
      'a lookup-failed log line',
      5000,
    )
    assert.equal(line['level'], 40, 'logged at warn')
    assert.equal(line['serviceAccount'], 'e2e-cf073f76/irsa-sa')
  })

  it('answers 500 when the API refuses connections, and mutates again once it listens', async () => {
    await proxy.refuse()
    await assertLookupFailed(/ECONNREFUSED|fetch failed|connect/i)
    await proxy.listen()
    await assertMutated()
  })

  it('answers 500 when the API answers 500 or 403, and recovers', async () => {
    api.fault({ path: SA_PATH, status: 500 })
    await assertLookupFailed(/HTTP 500/)
    api.clearFaults()
    api.fault({ path: SA_PATH, status: 403 })
    await assertLookupFailed(/HTTP 403/)
    api.clearFaults()
    await assertMutated()
  })

  it('answers 500 inside the deadline when the API answers after it, and recovers', async () => {
    api.fault({ path: SA_PATH, delayMs: 8000 })
    await assertLookupFailed(/deadline exceeded/)
    api.clearFaults()
    await assertMutated()
  })

  it('answers 500 when the API drops the connection before or in the middle of its answer', async () => {
    api.fault({ path: SA_PATH, destroy: 'before-headers' })
    await assertLookupFailed(/./, NOT_STATUS_OR_DEADLINE)
    api.clearFaults()
    api.fault({ path: SA_PATH, destroy: 'mid-body' })
    await assertLookupFailed(/./, NOT_STATUS_OR_DEADLINE)
    api.clearFaults()
    await assertMutated()
  })
})

async function assertLookupFailedWith(fault: () => void, reason: RegExp): Promise<void> {
  fault()
  await assertLookupFailed(reason)
  api.clearFaults()
}
