/**
 * `irsa-webhook certs` end to end against the loopback stand-in of test/support/fake-certs-api.ts (Secrets and the
 * webhook configuration with kube-apiserver's resourceVersion preconditions), with the shipped webhook
 * configurations: what a first run makes (checked with Node's X509Certificate and `openssl verify`), that a second
 * run writes nothing, renewal, CA rotation and its overlap, Secrets it did not make, write conflicts and concurrent
 * runs, and the exit codes.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, beforeEach, describe, test } from 'node:test'
import { CERTS_EXIT, OVERLAP_MS, runCerts, SECRET_NAMES } from '../../../cli/certs/certs.ts'
import { MANAGED_BY } from '../../../cli/certs/plan.ts'
import { parseBundle } from '../../../cli/certs/x509.ts'
import { manifest, runInProcess } from '../../support/cli-fake-cluster.ts'
import { type FakeCertsApi, startFakeCertsApi } from '../../support/fake-certs-api.ts'

const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/irsa-webhook'
const SECRETS = '/api/v1/namespaces/irsa-system/secrets'
const work = mkdtempSync(join(tmpdir(), 'irsa-cli-certs-'))
after(() => rmSync(work, { recursive: true, force: true }))

type Json = Record<string, unknown>
const text = (value: string | undefined) => Buffer.from(value ?? '', 'base64').toString('utf8')

function secret(api: FakeCertsApi, name: string) {
  const obj = api.objects.get(`${SECRETS}/${name}`) as
    | { type?: string; data: Record<string, string>; metadata: { labels?: Record<string, string> } }
    | undefined
  assert.ok(obj, `Secret ${name} exists`)
  return {
    type: obj.type,
    labels: obj.metadata.labels ?? {},
    keys: Object.keys(obj.data).sort(),
    data: Object.fromEntries(Object.entries(obj.data).map(([k, v]) => [k, text(v)])),
  }
}

function bundles(api: FakeCertsApi): string[] {
  const mwc = api.objects.get(MWC) as unknown as {
    webhooks: { clientConfig: { caBundle?: string } }[]
  }
  return mwc.webhooks.map((hook) => text(hook.clientConfig.caBundle))
}

/** The shipped configuration, with a second webhook so "every webhook" is exercised. */
function shippedConfiguration(file: string): Json {
  const [mwc] = manifest(file) as Json[]
  const hooks = (mwc as { webhooks: Json[] }).webhooks
  hooks.push({ ...structuredClone(hooks[0]), name: 'second.irsa.vultr.com' })
  return mwc as Json
}

/** openssl agrees: the serving certificate chains to caBundle, for `host`, as a TLS server certificate. */
function opensslVerifies(bundle: string, cert: string, host: string): void {
  const dir = mkdtempSync(join(work, 'verify-'))
  writeFileSync(join(dir, 'bundle.pem'), bundle)
  writeFileSync(join(dir, 'tls.crt'), cert)
  execFileSync(
    'openssl',
    [
      'verify',
      '-CAfile',
      join(dir, 'bundle.pem'),
      '-purpose',
      'sslserver',
      '-verify_hostname',
      host,
      join(dir, 'tls.crt'),
    ],
    { stdio: 'ignore', timeout: 30_000 },
  )
}

async function run(api: FakeCertsApi, args: string[] = [], now?: number) {
  let stdout = ''
  let stderr = ''
  const io = {
    out: (t: string) => {
      stdout += t
    },
    err: (t: string) => {
      stderr += t
    },
    readFile: () => '',
  }
  const code = await runCerts(
    ['--kubeconfig', api.kubeconfigPath, ...args],
    io,
    now === undefined ? {} : { now: () => now },
  )
  return { code, stdout, stderr }
}

describe('irsa-webhook certs (fake API)', () => {
  let api: FakeCertsApi
  beforeEach(async () => {
    api = await startFakeCertsApi()
    api.put(MWC, shippedConfiguration('deploy/base/webhook.yaml'))
  })
  afterEach(() => api.close())

  test('a first run makes the CA, the serving Secret and caBundle on every webhook; a second run does nothing', async () => {
    const first = await run(api)
    assert.equal(first.code, CERTS_EXIT.ok, first.stderr)
    assert.match(first.stdout, /^mode classic: .* Service irsa-system\/irsa-webhook;/)
    assert.match(first.stdout, /CA: created .*\(no CA yet\)/)
    assert.match(first.stdout, /\ndone\n$/)
    const ca = secret(api, SECRET_NAMES.ca)
    const tls = secret(api, SECRET_NAMES.classic)
    assert.deepEqual([ca.type, ca.keys], ['Opaque', ['ca.crt', 'ca.key']])
    assert.deepEqual([tls.type, tls.keys], ['kubernetes.io/tls', ['tls.crt', 'tls.key']])
    for (const s of [ca, tls]) assert.equal(s.labels[MANAGED_BY.key], MANAGED_BY.value)
    assert.deepEqual(bundles(api), [ca.data['ca.crt'], ca.data['ca.crt']])
    const leaf = new X509Certificate(tls.data['tls.crt'] ?? '')
    assert.equal(
      leaf.subjectAltName,
      'DNS:irsa-webhook.irsa-system.svc, DNS:irsa-webhook.irsa-system.svc.cluster.local',
    )
    opensslVerifies(
      bundles(api)[0] ?? '',
      tls.data['tls.crt'] ?? '',
      'irsa-webhook.irsa-system.svc',
    )
    // Written in the order that never leaves a served certificate untrusted: CA, caBundle, serving Secret.
    assert.deepEqual(api.writes, [`POST ${SECRETS} 201`, `PATCH ${MWC} 200`, `POST ${SECRETS} 201`])

    const writes = api.writes.length
    const second = await run(api)
    assert.equal(second.code, CERTS_EXIT.ok)
    assert.match(second.stdout, /CA: kept/)
    assert.match(second.stdout, /caBundle: unchanged \(the current CA\)/)
    assert.match(second.stdout, /serving certificate: kept .*expires \d{4}-\d\d-\d\d, renewed from/)
    assert.match(second.stdout, /\nnothing to do\n$/)
    assert.equal(api.writes.length, writes, 'nothing written')
  })

  test('a certificate within --renew-before of its end is renewed by the same CA; caBundle is not touched', async () => {
    await run(api)
    const before = secret(api, SECRET_NAMES.classic).data['tls.crt']
    const bundle = bundles(api)
    // Someone labels and annotates the Secret (e.g. Kourier's certificate-uid label): a renewal keeps both.
    const path = `${SECRETS}/${SECRET_NAMES.classic}`
    const stored = structuredClone(api.objects.get(path)) as unknown as {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> }
    }
    stored.metadata.labels['networking.internal.knative.dev/certificate-uid'] = 'irsa-webhook'
    stored.metadata.annotations = { 'example.com/note': 'kept' }
    api.put(path, stored)
    const writes = api.writes.length
    const renewed = await run(api, ['--renew-before', '400', '--ca-days', '3650'])
    assert.equal(renewed.code, CERTS_EXIT.ok, renewed.stderr)
    assert.match(renewed.stdout, /issued .*within 400 days \(--renew-before\)/)
    const after_ = secret(api, SECRET_NAMES.classic).data['tls.crt'] ?? ''
    assert.notEqual(after_, before)
    assert.deepEqual(bundles(api), bundle)
    assert.deepEqual(api.writes.slice(writes), [`PUT ${SECRETS}/${SECRET_NAMES.classic} 200`])
    const renewedMeta = api.objects.get(path)?.metadata as unknown as {
      labels: Record<string, string>
      annotations: Record<string, string>
    }
    assert.deepEqual(renewedMeta.labels, {
      [MANAGED_BY.key]: MANAGED_BY.value,
      'networking.internal.knative.dev/certificate-uid': 'irsa-webhook',
    })
    assert.deepEqual(renewedMeta.annotations, { 'example.com/note': 'kept' })
    opensslVerifies(bundle[0] ?? '', after_, 'irsa-webhook.irsa-system.svc')
  })

  test('--rotate-ca trusts old and new CA before the new certificate is written; an hour later the old CA goes', async () => {
    const start = Date.now()
    await run(api, [], start)
    const oldCa = secret(api, SECRET_NAMES.ca).data['ca.crt'] ?? ''
    const oldLeaf = secret(api, SECRET_NAMES.classic).data['tls.crt'] ?? ''
    const writes = api.writes.length
    const rotated = await run(api, ['--rotate-ca'], start + 1000)
    assert.equal(rotated.code, CERTS_EXIT.ok, rotated.stderr)
    const newCa = secret(api, SECRET_NAMES.ca).data['ca.crt'] ?? ''
    assert.notEqual(newCa, oldCa)
    assert.deepEqual(bundles(api), [newCa + oldCa, newCa + oldCa])
    assert.deepEqual(api.writes.slice(writes), [
      `PUT ${SECRETS}/${SECRET_NAMES.ca} 200`,
      `PATCH ${MWC} 200`,
      `PUT ${SECRETS}/${SECRET_NAMES.classic} 200`,
    ])
    // While the pods switch over, both the old and the new certificate verify against caBundle.
    const newLeaf = secret(api, SECRET_NAMES.classic).data['tls.crt'] ?? ''
    for (const leaf of [oldLeaf, newLeaf])
      opensslVerifies(bundles(api)[0] ?? '', leaf, 'irsa-webhook.irsa-system.svc')

    const soon = await run(api, [], start + OVERLAP_MS / 2)
    assert.match(soon.stdout, /caBundle: unchanged \(the current CA \+ 1 previous\)/)
    const later = await run(api, [], start + OVERLAP_MS + 120_000)
    assert.equal(later.code, CERTS_EXIT.ok)
    assert.match(later.stdout, /caBundle: set on 2 webhook\(s\).*dropped 1 previous CA/)
    assert.deepEqual(bundles(api), [newCa, newCa])
  })

  test('a Secret it did not create is left alone: exit 1, or with --job exit 0 and a Warning Event', async () => {
    api.put(`${SECRETS}/${SECRET_NAMES.classic}`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: SECRET_NAMES.classic, namespace: 'irsa-system' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': '', 'tls.key': '' },
    })
    const plain = await run(api)
    assert.equal(plain.code, CERTS_EXIT.notOurs)
    assert.match(
      plain.stderr,
      /irsa-system\/irsa-webhook-certs exists without the label app\.kubernetes\.io\/managed-by=irsa-webhook-certs/,
    )
    assert.deepEqual(api.writes, [], 'nothing written')
    const job = await run(api, ['--job'])
    assert.equal(job.code, CERTS_EXIT.ok)
    assert.deepEqual(api.writes, [`POST /api/v1/namespaces/irsa-system/events 201`])
    assert.deepEqual(
      [api.events[0]?.['type'], api.events[0]?.['reason'], api.events[0]?.['involvedObject']],
      [
        'Warning',
        'SecretNotManaged',
        { apiVersion: 'v1', kind: 'Secret', name: SECRET_NAMES.classic, namespace: 'irsa-system' },
      ],
    )
  })

  test('a write conflict (another writer first) is read again and decided again, never half-written', async () => {
    await run(api)
    // Right before the renewal's PUT, someone else replaces the serving Secret with a certificate of our CA.
    api.before('PUT', /secrets\/irsa-webhook-certs$/, () => {
      const stored = api.objects.get(`${SECRETS}/${SECRET_NAMES.classic}`)
      if (stored) api.put(`${SECRETS}/${SECRET_NAMES.classic}`, stored)
    })
    const result = await run(api, ['--renew-before', '400'])
    assert.equal(result.code, CERTS_EXIT.ok, result.stderr)
    assert.match(result.stderr, /HTTP 409.*another writer was first, reading again/)
    assert.ok(api.writes.includes(`PUT ${SECRETS}/${SECRET_NAMES.classic} 409`))
    assert.equal(api.writes.at(-1), `PUT ${SECRETS}/${SECRET_NAMES.classic} 200`)
  })

  test('two runs at once end with one CA, caBundle trusting it and a certificate it signed', async () => {
    const [a, b] = await Promise.all([run(api), run(api)])
    assert.deepEqual([a.code, b.code], [CERTS_EXIT.ok, CERTS_EXIT.ok], a.stderr + b.stderr)
    const ca = secret(api, SECRET_NAMES.ca).data['ca.crt'] ?? ''
    assert.equal(parseBundle(ca).length, 1)
    for (const bundle of bundles(api)) assert.ok(bundle.startsWith(ca))
    opensslVerifies(
      ca,
      secret(api, SECRET_NAMES.classic).data['tls.crt'] ?? '',
      'irsa-webhook.irsa-system.svc',
    )
    assert.match((await run(api)).stdout, /nothing to do/)
  })

  test('it could not do its work: exit 3 (also with --job), the message names the request and the RBAC', async () => {
    api.forbid('PATCH', /mutatingwebhookconfigurations/)
    for (const args of [[], ['--job']]) {
      const result = await run(api, args)
      assert.equal(result.code, CERTS_EXIT.failed)
      assert.match(
        result.stderr,
        /could not do its work: patch caBundle of MutatingWebhookConfiguration irsa-webhook: HTTP 403.*deploy\/components\/certs\/rbac\.yaml/,
      )
    }
    api.objects.delete(MWC)
    const missing = await run(api, ['--job'])
    assert.equal(missing.code, CERTS_EXIT.failed)
    assert.match(
      missing.stderr,
      /MutatingWebhookConfiguration irsa-webhook not found: apply the manifests first/,
    )
  })

  test('bad flags are usage errors (exit 2) naming the flag', async () => {
    for (const [args, message] of [
      [['--days', 'ten'], /--days takes a whole number of days >= 1, got "ten"/],
      [['--mode', 'serverless'], /--mode must be auto or classic or knative, got "serverless"/],
      [
        ['--days', '365', '--renew-before', '30', '--ca-days', '300'],
        /--ca-days \(300\) must be more than --days \+ --renew-before \(395\)/,
      ],
    ] as const) {
      const result = await runInProcess(['certs', '--kubeconfig', api.kubeconfigPath, ...args])
      assert.equal(result.code, CERTS_EXIT.usage)
      assert.match(result.stderr, message)
    }
  })
})

describe('irsa-webhook certs, knative (fake API)', () => {
  test('the configuration calls the gateway alias: mode knative, Secret irsa-webhook-tls, SAN of the alias', async () => {
    const api = await startFakeCertsApi()
    try {
      api.put(MWC, shippedConfiguration('knative/base/webhook.yaml'))
      const result = await run(api)
      assert.equal(result.code, CERTS_EXIT.ok, result.stderr)
      assert.match(result.stdout, /^mode knative: .*Service kourier-system\/irsa-webhook/)
      const tls = secret(api, SECRET_NAMES.knative)
      assert.equal(tls.type, 'kubernetes.io/tls')
      opensslVerifies(
        bundles(api)[0] ?? '',
        tls.data['tls.crt'] ?? '',
        'irsa-webhook.kourier-system.svc',
      )
    } finally {
      await api.close()
    }
  })
})
