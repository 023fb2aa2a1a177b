// Unit tests for doctor's certificate logic and dry-run pod rules, with an in-memory API (no sockets).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import type { DoctorContext } from '../../../cli/doctor/context.ts'
import { formatResult } from '../../../cli/doctor/doctor.ts'
import { adviceFor, missingIdentity } from '../../../cli/doctor/pod.ts'
import { chainVerifies, checkCertificate, parseCertificates } from '../../../cli/doctor/tls.ts'
import type { KubeClient } from '../../../cli/shared/kube.ts'
import { createTestCertificates, writeCertificate } from '../../support/tls.ts'

const HOST = 'irsa-webhook.irsa-system.svc'
const DAY = 86_400_000
const dirs: string[] = []
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** A self-signed serving certificate valid for `days` (the test CA only issues 2-day ones). */
function selfSigned(days: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'cli-doctor-'))
  dirs.push(dir)
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'k.pem',
      '-out',
      'c.pem',
      '-days',
      String(days),
      '-subj',
      `/CN=${HOST}`,
      '-addext',
      `subjectAltName=DNS:${HOST}`,
    ],
    { cwd: dir, stdio: 'ignore' },
  )
  return readFileSync(join(dir, 'c.pem'), 'utf8')
}

/** A doctor context whose API serves only the certificate Secret. */
function contextWith(certPem: string, caPem: string): DoctorContext {
  const secret = { data: { 'tls.crt': Buffer.from(certPem).toString('base64') } }
  const client: KubeClient = {
    server: 'memory',
    get: async (path) =>
      path === '/api/v1/namespaces/irsa-system/secrets/irsa-webhook-certs'
        ? { status: 200, body: secret, text: '', headers: {} }
        : { status: 404, body: {}, text: '', headers: {} },
    request: async () => ({ status: 405, body: {}, text: '', headers: {} }),
  }
  return {
    client,
    mode: 'classic',
    namespace: 'irsa-system',
    configurationName: 'irsa-webhook',
    identity: { namespace: 'irsa-system', name: 'irsa-webhook' },
    probe: undefined,
    tlsSecret: undefined,
    webhook: {
      name: 'irsa.vultr.com',
      clientConfig: {
        service: { namespace: 'irsa-system', name: 'irsa-webhook' },
        caBundle: Buffer.from(caPem).toString('base64'),
      },
    },
  }
}

describe('certificate checks', () => {
  test('a certificate with a year left passes all three checks', async () => {
    const pem = selfSigned(365)
    const results = await checkCertificate(contextWith(pem, pem))
    assert.deepEqual(
      results.map((r) => r.status),
      ['pass', 'pass', 'pass'],
    )
    assert.match(results[2]?.detail ?? '', /^36[45] days left/)
  })

  test('expiry warns under 30 days, fails once expired and before validity', async () => {
    const pem = selfSigned(365)
    const [cert] = parseCertificates(pem)
    assert.ok(cert)
    const validTo = new Date(cert.validTo).getTime()
    const soon = await checkCertificate(contextWith(pem, pem), validTo - 10 * DAY)
    assert.equal(soon[2]?.status, 'warn')
    const expired = await checkCertificate(contextWith(pem, pem), validTo + DAY)
    assert.equal(expired[2]?.status, 'fail')
    assert.match(expired[2]?.detail ?? '', /^expired on/)
    const early = await checkCertificate(
      contextWith(pem, pem),
      new Date(cert.validFrom).getTime() - DAY,
    )
    assert.match(early[2]?.detail ?? '', /^not valid before/)
  })

  test('chainVerifies follows a leaf to its CA, through an intermediate in the chain, and not to a stranger', () => {
    const certs = createTestCertificates({ dnsNames: [HOST] })
    dirs.push(certs.dir)
    const other = createTestCertificates({ dnsNames: [HOST] })
    dirs.push(other.dir)
    const [leaf] = parseCertificates(certs.certPem)
    const roots = parseCertificates(certs.caPem)
    assert.ok(leaf)
    assert.equal(chainVerifies([leaf], roots), true)
    assert.equal(chainVerifies([leaf], parseCertificates(other.caPem)), false)
    // The CA itself as an "intermediate" after the leaf, anchored by the CA's own fingerprint.
    assert.equal(chainVerifies([leaf, ...roots], roots), true)
    const wrong = writeCertificate(certs.dir, { dnsNames: ['other.svc'], name: 'other' })
    assert.equal(chainVerifies(parseCertificates(wrong.certPem), roots), true)
  })

  test('an empty caBundle fails, and the fix is printed under the line', async () => {
    const pem = selfSigned(365)
    const [bundle] = await checkCertificate(contextWith(pem, ''))
    assert.ok(bundle)
    assert.equal(bundle.status, 'fail')
    assert.equal(
      formatResult(bundle),
      '✘ caBundle verifies the serving certificate — the webhook has no caBundle\n    fix: kubectl -n irsa-system create job --from=cronjob/irsa-webhook-certs-renew renew-now, or ./generate-certs.sh --mode classic\n',
    )
  })
})

describe('dry-run pod rules', () => {
  test('missingIdentity lists what the returned pod lacks', () => {
    const role = 'r'
    const good = {
      spec: {
        containers: [
          {
            name: 'c',
            env: [
              { name: 'AWS_ROLE_ARN', value: 'r' },
              {
                name: 'AWS_WEB_IDENTITY_TOKEN_FILE',
                value: '/var/run/secrets/vultr.com/serviceaccount/token',
              },
            ],
          },
        ],
        volumes: [{ name: 'vultr-irsa-token' }],
      },
    }
    assert.deepEqual(missingIdentity(good, role), [])
    assert.deepEqual(missingIdentity({ spec: { containers: [{ name: 'c' }] } }, role), [
      'AWS_ROLE_ARN=r',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
      'volume vultr-irsa-token',
    ])
  })

  test('adviceFor maps API server errors to the symptom', () => {
    assert.match(adviceFor('x509: certificate signed by unknown authority'), /^TLS/)
    assert.match(
      adviceFor('admission webhook "irsa.vultr.com" denied the request: x'),
      /api\.vultr\.com\/role/,
    )
    // With --enable-aggregator-routing, then the default (the ClusterIP dialled: refused, unroutable, or no answer).
    for (const tail of [
      'no endpoints available for service "irsa-webhook"',
      'dial tcp 10.96.143.7:443: connect: connection refused',
      'dial tcp 10.96.143.7:443: connect: no route to host',
      'dial tcp 10.96.143.7:443: i/o timeout',
      'context deadline exceeded',
      'context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
    ]) {
      const message = `Internal error occurred: failed calling webhook "irsa.vultr.com": failed to call webhook: Post "https://irsa-webhook.irsa-system.svc:443/mutate?timeout=10s": ${tail}`
      assert.match(adviceFor(message), /^the webhook is not responding/, tail)
    }
    // The URL's `?timeout=10s` alone does not make a failure "not responding".
    assert.match(
      adviceFor(
        'failed calling webhook "irsa.vultr.com": failed to call webhook: Post "https://irsa-webhook.irsa-system.svc:443/mutate?timeout=10s": http: server gave HTTP response to HTTPS client',
      ),
      /^read the message/,
    )
    assert.match(adviceFor('some other failure'), /^read the message/)
  })
})
