import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Agent } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startFakeKubeApi } from '../support/fake-kube-api.ts'
import {
  type ChildServer,
  handshake,
  poll,
  runToExit,
  send,
  spawnServer,
  type Target,
  within,
} from '../support/process.ts'
import { createTestCertificates, type TestCertificates, writeCertificate } from '../support/tls.ts'

const fixtures = new URL('../fixtures/admission/', import.meta.url)
const read = (name: string) => readFileSync(new URL(name, fixtures), 'utf8')
const review = JSON.parse(read('pod-irsa-single-container.json'))
const NAMES = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }

const postReview = (target: Target, uid = review.request.uid as string) =>
  send(
    target,
    'POST',
    '/mutate?timeout=10s',
    JSON.stringify({ ...review, request: { ...review.request, uid } }),
  )

function writeServiceAccounts(dir: string): string {
  const path = join(dir, 'service-accounts.yaml')
  const docs = ['serviceaccount-irsa-sa.json', 'serviceaccount-plain-sa.json'].map(read)
  writeFileSync(path, docs.join('\n---\n'))
  return path
}

function httpsEnv(certs: TestCertificates, saFile: string): Record<string, string> {
  return {
    HOST: '127.0.0.1',
    PORT: '0',
    TLS_CERT_PATH: certs.certPath,
    TLS_KEY_PATH: certs.keyPath,
    TLS_RELOAD_INTERVAL_MS: '100',
    SERVICE_ACCOUNTS_FILE: saFile,
  }
}

let certs: TestCertificates
let dir: string
let saFile: string
before(() => {
  certs = createTestCertificates(NAMES)
  dir = mkdtempSync(join(tmpdir(), 'irsa-handler-'))
  saFile = writeServiceAccounts(dir)
})
after(() => {
  rmSync(certs.dir, { recursive: true, force: true })
  rmSync(dir, { recursive: true, force: true })
})

it('runs the webhook on the Node major the image ships (24)', () => {
  assert.match(process.versions.node, /^24\./)
})

describe('handler.ts in HTTPS mode', () => {
  let server: ChildServer
  let target: Target
  before(async () => {
    server = await spawnServer({ env: httpsEnv(certs, saFile) })
    target = { port: server.port, ca: certs.caPem }
  })
  after(() => server.stop())

  it('answers a POST over TLS, verified with the CA, with a JSONPatch', async () => {
    const reply = await postReview(target)
    assert.equal(reply.status, 200)
    const { response } = JSON.parse(reply.text)
    assert.equal(response.uid, review.request.uid)
    assert.equal(response.allowed, true)
    assert.equal(response.patchType, 'JSONPatch')
    assert.ok(JSON.parse(Buffer.from(response.patch, 'base64').toString()).length > 0)
  })

  it('writes one JSON log line per decision with uid, namespace, ServiceAccount, outcome and ms', async () => {
    const uid = 'log-line-0001'
    assert.equal((await postReview(target, uid)).status, 200)
    const lines = await poll(() => {
      const found = server.logs.filter((line) => line['uid'] === uid)
      return found.length > 0 ? found : undefined
    }, 'the decision log line')
    assert.equal(lines.length, 1)
    const [line] = lines
    assert.equal(line?.['namespace'], 'e2e-cf073f76')
    assert.equal(line?.['serviceAccount'], 'e2e-cf073f76/irsa-sa')
    assert.equal(line?.['outcome'], 'mutated')
    assert.equal(typeof line?.['ms'], 'number')
  })

  it('serves /health, /healthz, /readyz and /metrics with the decision counter', async () => {
    for (const path of ['/health', '/healthz', '/readyz']) {
      assert.equal((await send(target, 'GET', path)).status, 200, path)
    }
    await postReview(target)
    const metrics = await send(target, 'GET', '/metrics')
    assert.equal(metrics.status, 200)
    assert.match(metrics.text, /^irsa_webhook_decisions_total\{outcome="mutated"\} [1-9]/m)
  })

  it('refuses a TLS 1.1 client and accepts TLS 1.2', async () => {
    await assert.rejects(handshake(server.port, certs.caPem, ['TLSv1', 'TLSv1.1']))
    const serial = await handshake(server.port, certs.caPem, ['TLSv1.2', 'TLSv1.2'])
    assert.ok(serial.length > 0)
  })
})

describe('handler.ts certificate rotation', () => {
  it('serves a certificate replaced on disk without a restart', async (t) => {
    const rotating = createTestCertificates(NAMES)
    const server = await spawnServer({ env: httpsEnv(rotating, saFile) })
    t.after(async () => {
      await server.stop()
      rmSync(rotating.dir, { recursive: true, force: true })
    })
    const first = await handshake(server.port, rotating.caPem, ['TLSv1.2', 'TLSv1.3'])
    writeCertificate(rotating.dir, NAMES)
    const next = await poll(async () => {
      const serial = await handshake(server.port, rotating.caPem, ['TLSv1.2', 'TLSv1.3'])
      return serial === first ? undefined : serial
    }, 'the new certificate to be served')
    assert.notEqual(next, first)
    assert.equal((await postReview({ port: server.port, ca: rotating.caPem })).status, 200)
    assert.equal(server.child.exitCode, null)
  })
})

describe('handler.ts shutdown', () => {
  it('loses no request when SIGTERM arrives during load, and exits 0', async (t) => {
    // Every lookup waits 300 ms at the fake apiserver, so many reviews are in flight at SIGTERM.
    const fake = await startFakeKubeApi({
      serviceAccounts: [JSON.parse(read('serviceaccount-irsa-sa.json'))],
    })
    t.after(() => fake.close())
    fake.fault({ path: /\/serviceaccounts\/irsa-sa$/, delayMs: 300 })
    const { SERVICE_ACCOUNTS_FILE: _file, ...env } = httpsEnv(certs, saFile)
    const server = await spawnServer({
      // The forced close comes after a minute: exiting before it means every connection ended on its own.
      env: {
        ...env,
        KUBECONFIG: fake.kubeconfigPath,
        SA_CACHE_TTL_SECONDS: '0',
        SHUTDOWN_TIMEOUT_MS: '60000',
      },
    })
    t.after(() => server.stop())
    const agents = [0, 1, 2, 3].map(() => new Agent({ keepAlive: true, maxSockets: 10 }))
    t.after(() => {
      for (const agent of agents) agent.destroy()
    })
    const results = await loadWithSigterm(server, agents, 200)
    const statuses = results.filter((r) => typeof r.status === 'number')
    assert.deepEqual(
      statuses.filter((r) => r.status !== 200),
      [],
    )
    assert.ok(
      results.some((r) => r.status === 200 && r.afterSigterm),
      'in-flight at SIGTERM',
    )
    // The keep-alive agents stay open: the server must end their connections itself.
    assert.deepEqual(await server.exited(30_000), { code: 0, signal: null })
    // Every review the server decided reached its client; a refused request was never decided.
    const decided = new Set(server.logs.map((line) => line['uid']).filter(Boolean))
    assert.deepEqual(
      results.filter((r) => decided.has(r.uid) !== (r.status === 200)),
      [],
    )
    const errors = results.flatMap((r) => (r.error === undefined ? [] : [r.error]))
    // Refused at connect, or reset on an idle keep-alive socket closed at SIGTERM: never read by the server.
    assert.deepEqual(
      errors.filter((code) => code !== 'ECONNREFUSED' && code !== 'ECONNRESET'),
      [],
    )
    t.diagnostic(`${statuses.length} answered; connection errors: ${errors.join(' ') || 'none'}`)
  })
})

interface LoadResult {
  uid: string
  status?: number
  error?: string
  afterSigterm: boolean
}

async function loadWithSigterm(server: ChildServer, agents: Agent[], count: number) {
  let answered = 0
  let signalled = false
  const results = Array.from({ length: count }, async (_, i): Promise<LoadResult> => {
    const uid = `load-${i}`
    const target = { port: server.port, ca: certs.caPem, agent: agents[i % agents.length] as Agent }
    try {
      const reply = await postReview(target, uid)
      answered += 1
      if (answered === 40) {
        signalled = true
        server.child.kill('SIGTERM')
      }
      return { uid, status: reply.status, afterSigterm: signalled }
    } catch (error) {
      return {
        uid,
        error: (error as NodeJS.ErrnoException).code ?? String(error),
        afterSigterm: signalled,
      }
    }
  })
  const settled = await within(Promise.all(results), 30_000, 'every request to settle')
  assert.equal(signalled, true)
  return settled
}

describe('handler.ts start-up', () => {
  it('serves plain HTTP on PORT in Knative mode (K_SERVICE set)', async (t) => {
    const server = await spawnServer({
      env: {
        K_SERVICE: 'irsa-webhook',
        HOST: '127.0.0.1',
        PORT: '0',
        SERVICE_ACCOUNTS_FILE: saFile,
      },
    })
    t.after(() => server.stop())
    assert.equal(server.logs.find((line) => line['msg'] === 'listening')?.['mode'], 'http')
    assert.equal((await send({ port: server.port }, 'GET', '/readyz')).status, 200)
    assert.equal((await postReview({ port: server.port })).status, 200)
  })

  it('exits 1 on an invalid configuration and lists every problem', async () => {
    const result = await runToExit({ env: { PORT: 'abc', INVALID_ROLE_POLICY: 'maybe' } })
    assert.equal(result.code, 1)
    assert.match(result.stderr, /PORT/)
    assert.match(result.stderr, /INVALID_ROLE_POLICY/)
  })

  it('exits 1 naming the file when the certificate is missing in HTTPS mode', async () => {
    const missing = join(dir, 'missing.crt')
    const result = await runToExit({ env: { ...httpsEnv(certs, saFile), TLS_CERT_PATH: missing } })
    assert.equal(result.code, 1)
    assert.ok(result.stderr.includes(missing), result.stderr)
  })
})
