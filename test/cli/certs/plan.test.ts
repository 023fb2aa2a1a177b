/**
 * The decisions of `irsa-webhook certs` (cli/certs/plan.ts) on certificates made by cli/certs/x509.ts at chosen
 * times: when the CA is kept, made or replaced, when the serving certificate is kept or issued (and why), which
 * CAs caBundle keeps during a rotation, and that a Secret without the ownership label stops everything.
 */
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { before, describe, test } from 'node:test'
import {
  bundleText,
  decideCa,
  decideServing,
  type Observed,
  type Policy,
  planCertificates,
  previousCas,
  type SecretState,
} from '../../../cli/certs/plan.ts'
import {
  issueServing,
  type KeyPairPem,
  keyMatches,
  makeCa,
  sanEntries,
  serviceNames,
  signedBy,
} from '../../../cli/certs/x509.ts'

const DAY = 86_400_000
const NOW = Date.UTC(2026, 11, 6)
const HOST = 'irsa-webhook.irsa-system.svc'
const NAMES = serviceNames(HOST)
const POLICY: Policy = {
  names: NAMES,
  days: 365,
  caDays: 3650,
  renewBeforeDays: 30,
  rotateCa: false,
  overlapMs: 3_600_000,
}

const caSecret = (pair: KeyPairPem): SecretState => ({
  kind: 'ours',
  name: 'irsa-webhook-ca',
  resourceVersion: '1',
  data: { 'ca.crt': pair.cert, 'ca.key': pair.key },
})
const servingSecret = (pair: KeyPairPem): SecretState => ({
  kind: 'ours',
  name: 'irsa-webhook-certs',
  resourceVersion: '2',
  data: { 'tls.crt': pair.cert, 'tls.key': pair.key },
})

let ca: KeyPairPem
let leaf: KeyPairPem
before(async () => {
  ca = await makeCa(NOW - 100 * DAY, 3650)
  leaf = await issueServing(ca, NAMES, NOW - 10 * DAY, 365)
})

describe('x509: what the certificates are made of', () => {
  test('a webhook called by URL on an IP address: the certificate names that IP address alone', async () => {
    const cert = new X509Certificate(
      (await issueServing(ca, [{ type: 'ip', value: '127.0.0.1' }], NOW, 1)).cert,
    )
    assert.deepEqual(sanEntries(cert), ['IP Address:127.0.0.1'])
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1')
  })

  test('the CA is a CA with its key; the serving certificate names the host and its cluster.local form, signed by the CA', () => {
    const caCert = new X509Certificate(ca.cert)
    const cert = new X509Certificate(leaf.cert)
    assert.equal(caCert.ca, true)
    assert.equal(caCert.subject, 'CN=irsa-webhook-ca')
    assert.ok(keyMatches(caCert, ca.key))
    assert.equal(cert.ca, false)
    assert.equal(cert.subject, `CN=${HOST}`)
    assert.deepEqual(sanEntries(cert), [`DNS:${HOST}`, `DNS:${HOST}.cluster.local`])
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extended key usage serverAuth')
    assert.ok(signedBy(cert, caCert))
    assert.ok(keyMatches(cert, leaf.key))
    assert.match(leaf.key, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8, as openssl genpkey writes it')
    assert.equal(
      new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime(),
      365 * DAY + 60_000,
    )
  })
})

describe('the CA', () => {
  test('none yet: created', () => {
    assert.deepEqual(decideCa({ kind: 'absent' }, POLICY, NOW), {
      action: 'create',
      reason: 'no CA yet',
    })
  })
  test('valid with more than --days + --renew-before left: kept', () => {
    assert.equal(decideCa(caSecret(ca), POLICY, NOW).action, 'keep')
  })
  test('fewer than --days + --renew-before days left: replaced, saying when it expires', () => {
    const end = new Date(new X509Certificate(ca.cert).validTo).getTime()
    const step = decideCa(caSecret(ca), POLICY, end - 394 * DAY)
    assert.equal(step.action, 'replace')
    assert.match(step.action === 'replace' ? step.reason : '', /less than 395 days away/)
    assert.equal(decideCa(caSecret(ca), POLICY, end - 396 * DAY).action, 'keep')
  })
  test('--rotate-ca, an unreadable certificate or a key of another CA: replaced', () => {
    assert.deepEqual(decideCa(caSecret(ca), { ...POLICY, rotateCa: true }, NOW), {
      action: 'replace',
      reason: '--rotate-ca',
    })
    const broken = caSecret({ cert: 'garbage', key: ca.key })
    assert.match(JSON.stringify(decideCa(broken, POLICY, NOW)), /has no readable ca\.crt/)
    const wrongKey = caSecret({ cert: ca.cert, key: leaf.key })
    assert.match(JSON.stringify(decideCa(wrongKey, POLICY, NOW)), /does not hold a CA and its key/)
    const notCa = caSecret(leaf)
    assert.equal(decideCa(notCa, POLICY, NOW).action, 'replace')
  })
})

describe('the serving certificate', () => {
  const caCert = () => new X509Certificate(ca.cert)
  const reason = (step: ReturnType<typeof decideServing>) =>
    step.action === 'issue' ? step.reason : 'kept'

  test('valid, for the host, signed by the CA, more than --renew-before left: kept', () => {
    assert.equal(reason(decideServing(servingSecret(leaf), caCert(), POLICY, NOW)), 'kept')
  })
  test('each reason to issue a new one', async () => {
    assert.equal(
      reason(decideServing(servingSecret(leaf), undefined, POLICY, NOW)),
      'the CA is new',
    )
    assert.equal(
      reason(decideServing({ kind: 'absent' }, caCert(), POLICY, NOW)),
      'no serving certificate yet',
    )
    const otherCa = await makeCa(NOW, 3650)
    assert.equal(
      reason(
        decideServing(
          servingSecret(await issueServing(otherCa, NAMES, NOW, 365)),
          caCert(),
          POLICY,
          NOW,
        ),
      ),
      'the certificate is not signed by the current CA',
    )
    assert.match(
      reason(
        decideServing(
          servingSecret(await issueServing(ca, serviceNames('other.irsa-system.svc'), NOW, 365)),
          caCert(),
          POLICY,
          NOW,
        ),
      ),
      /names DNS:other\.irsa-system\.svc, DNS:other\.irsa-system\.svc\.cluster\.local; expected DNS:irsa-webhook\.irsa-system\.svc/,
    )
    assert.match(
      reason(decideServing(servingSecret({ cert: leaf.cert, key: ca.key }), caCert(), POLICY, NOW)),
      /tls\.key in Secret irsa-webhook-certs is not the key of tls\.crt/,
    )
    const end = new Date(new X509Certificate(leaf.cert).validTo).getTime()
    assert.match(
      reason(decideServing(servingSecret(leaf), caCert(), POLICY, end - 29 * DAY)),
      /expires on \d{4}-\d\d-\d\d, within 30 days \(--renew-before\)/,
    )
    assert.equal(
      reason(decideServing(servingSecret(leaf), caCert(), POLICY, end - 31 * DAY)),
      'kept',
    )
  })
})

describe('caBundle during a rotation', () => {
  test('the previous CA stays while the new certificate is younger than the overlap, then goes; expired CAs go at once', async () => {
    const next = await makeCa(NOW, 3650)
    const current = new X509Certificate(next.cert)
    const bundle = [bundleText(next.cert, [ca.cert])]
    assert.deepEqual(previousCas(bundle, current, NOW, POLICY, NOW + 1000).previous, [
      new X509Certificate(ca.cert).toString(),
    ])
    const later = previousCas(bundle, current, NOW, POLICY, NOW + POLICY.overlapMs + 1)
    assert.deepEqual(later.previous, [])
    assert.match(
      later.dropped,
      /1 previous CA\(s\): the serving certificate of the current CA is older than 1 h/,
    )
    const expired = await makeCa(NOW - 20 * DAY, 10)
    assert.deepEqual(
      previousCas([bundleText(next.cert, [expired.cert])], current, NOW, POLICY, NOW).previous,
      [],
    )
  })
})

describe('planCertificates', () => {
  test('a Secret without the ownership label stops everything', () => {
    const observed: Observed = {
      ca: caSecret(ca),
      serving: { kind: 'foreign', name: 'irsa-webhook-certs' },
      caBundles: [ca.cert],
    }
    assert.deepEqual(planCertificates(observed, POLICY, NOW), {
      kind: 'foreign',
      secrets: ['irsa-webhook-certs'],
    })
  })
  test('nothing to do: CA kept, certificate kept, no previous CA', () => {
    const plan = planCertificates(
      { ca: caSecret(ca), serving: servingSecret(leaf), caBundles: [ca.cert] },
      POLICY,
      NOW,
    )
    assert.equal(plan.kind, 'apply')
    if (plan.kind !== 'apply') return
    assert.deepEqual(
      [plan.ca.action, plan.serving.action, plan.previous, plan.dropped],
      ['keep', 'keep', [], ''],
    )
  })
  test('a CA replaced: a new certificate, and the old CA kept in caBundle behind the new one', () => {
    const plan = planCertificates(
      { ca: caSecret(ca), serving: servingSecret(leaf), caBundles: [ca.cert, ca.cert] },
      { ...POLICY, rotateCa: true },
      NOW,
    )
    assert.equal(plan.kind, 'apply')
    if (plan.kind !== 'apply') return
    assert.deepEqual([plan.ca.action, plan.serving.action], ['replace', 'issue'])
    assert.deepEqual(plan.previous, [new X509Certificate(ca.cert).toString()])
  })
})
