// irsa-webhook doctor against a fake cluster with the shipped manifests: each check passes on a healthy
// installation, and breaking one thing fails exactly that check.

import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, test } from 'node:test'
import {
  type FakeCluster,
  putCertificateSecret,
  putEndpoints,
  ROLE,
  runChild,
  runInProcess,
  startFakeCluster,
  WEBHOOK_UNREACHABLE,
} from '../../support/cli-fake-cluster.ts'
import { createTestCertificates, writeCertificate } from '../../support/tls.ts'

type Json = Record<string, unknown>

/** `{ check name: symbol }` from doctor output. */
function results(stdout: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const line of stdout.split('\n')) {
    const match = /^([✔!✘-]) (.+?) — /.exec(line)
    if (match?.[1] && match[2]) map.set(match[2], match[1])
  }
  return map
}

function failedChecks(stdout: string): string[] {
  return [...results(stdout)].filter(([, symbol]) => symbol === '✘').map(([name]) => name)
}

async function doctor(cluster: FakeCluster, ...extra: string[]) {
  return runInProcess([
    'doctor',
    '--kubeconfig',
    cluster.api.kubeconfigPath,
    '-s',
    'default/app',
    ...extra,
  ])
}

function firstWebhook(cluster: FakeCluster): Json {
  return (cluster.webhookConfiguration['webhooks'] as Json[])[0] ?? {}
}

function withWebhook(cluster: FakeCluster, change: (webhook: Json) => Json): void {
  cluster.putWebhook({ webhooks: [change(structuredClone(firstWebhook(cluster)))] })
}

describe('irsa-webhook doctor (classic)', () => {
  let cluster: FakeCluster
  beforeEach(async () => {
    cluster = await startFakeCluster('classic')
  })
  afterEach(() => cluster.close())

  test('a healthy installation passes every check and exits 0 (child process)', async () => {
    const run = await runChild([
      'doctor',
      '--kubeconfig',
      cluster.api.kubeconfigPath,
      '-s',
      'default/app',
    ])
    assert.equal(run.code, 0, run.stdout + run.stderr)
    const map = results(run.stdout)
    assert.deepEqual(failedChecks(run.stdout), [])
    for (const name of [
      'MutatingWebhookConfiguration irsa-webhook',
      'webhook settings',
      'Service irsa-system/irsa-webhook',
      'endpoints of irsa-system/irsa-webhook',
      'caBundle verifies the serving certificate',
      'certificate name',
      'RBAC: irsa-system/irsa-webhook can get serviceaccounts',
      'exclusions',
      'dry-run pod with default/app',
      'OIDC discovery',
    ]) {
      assert.equal(map.get(name), '✔', name)
    }
    // The test CA issues 2-day certificates: the expiry check warns (< 30 days) without failing.
    assert.equal(map.get('certificate expiry'), '!')
    assert.match(run.stdout, /mode classic/)
  })

  test('a missing MutatingWebhookConfiguration fails and the checks that need it are skipped', async () => {
    const run = await doctor(cluster, '--configuration', 'not-there')
    assert.equal(run.code, 1)
    assert.deepEqual(failedChecks(run.stdout), ['MutatingWebhookConfiguration not-there'])
    assert.equal(results(run.stdout).get('Service'), '-')
    assert.match(run.stdout, /fix: install it: kubectl apply -k deploy\//)
  })

  test('webhook settings warn when reinvocationPolicy is Never (webhook ordering)', async () => {
    withWebhook(cluster, (w) => ({ ...w, reinvocationPolicy: 'Never' }))
    const run = await doctor(cluster)
    assert.equal(results(run.stdout).get('webhook settings'), '!')
    assert.match(run.stdout, /reinvocationPolicy is not IfNeeded/)
    assert.equal(run.code, 0)
  })

  test('an ExternalName Service fails the Service check', async () => {
    cluster.api.putObject('/api/v1/namespaces/irsa-system/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'irsa-webhook', namespace: 'irsa-system' },
      spec: {
        type: 'ExternalName',
        externalName: 'kourier-internal.kourier-system.svc.cluster.local',
      },
    })
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), ['Service irsa-system/irsa-webhook'])
  })

  test('no ready endpoints fails the endpoints check, and the dry-run pod sees the webhook down in each form the API server reports it', async () => {
    putEndpoints(cluster, false)
    cluster.webhookUp = false
    for (const form of Object.values(WEBHOOK_UNREACHABLE)) {
      cluster.webhookDownError = form
      const run = await doctor(cluster)
      assert.deepEqual(failedChecks(run.stdout), [
        'endpoints of irsa-system/irsa-webhook',
        'dry-run pod with default/app',
      ])
      assert.ok(run.stdout.includes(form), form)
      assert.match(run.stdout, /fix: the webhook is not responding/, form)
      assert.equal(run.code, 1)
    }
  })

  test('a webhook that calls a url fails, and the fix deletes, re-applies and re-runs generate-certs.sh', async () => {
    withWebhook(cluster, (w) => ({
      ...w,
      clientConfig: {
        url: 'https://irsa.example.test/mutate',
        caBundle: (w['clientConfig'] as Json)['caBundle'],
      },
    }))
    const run = await doctor(cluster)
    assert.equal(run.code, 1)
    assert.ok(failedChecks(run.stdout).includes('MutatingWebhookConfiguration irsa-webhook'))
    assert.match(
      run.stdout,
      /✘ MutatingWebhookConfiguration irsa-webhook — webhook irsa\.vultr\.com uses a url, not a Service\n {4}fix: kubectl delete mutatingwebhookconfiguration irsa-webhook && kubectl apply -k deploy\/ && \.\/generate-certs\.sh --mode classic \(/,
    )
  })

  test('a caBundle from another CA fails the caBundle check', async (t) => {
    const other = createTestCertificates({ dnsNames: ['irsa-webhook.irsa-system.svc'] })
    t.after(() => rmSync(other.dir, { recursive: true, force: true }))
    withWebhook(cluster, (w) => ({
      ...w,
      clientConfig: {
        ...(w['clientConfig'] as Json),
        caBundle: Buffer.from(other.caPem).toString('base64'),
      },
    }))
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), ['caBundle verifies the serving certificate'])
  })

  test('a certificate for another name fails the name check', async () => {
    const wrong = writeCertificate(cluster.certs.dir, {
      dnsNames: ['irsa-webhook.default.svc'],
      name: 'wrong',
    })
    putCertificateSecret(cluster, wrong.certPem)
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), ['certificate name'])
    assert.match(run.stdout, /lacks irsa-webhook\.irsa-system\.svc/)
  })

  test('a missing certificate Secret fails the caBundle check and skips the others', async () => {
    const run = await doctor(cluster, '--tls-secret', 'nope')
    assert.deepEqual(failedChecks(run.stdout), ['caBundle verifies the serving certificate'])
    assert.equal(results(run.stdout).get('certificate name'), '-')
  })

  test('RBAC without get fails; without list/watch only warns', async () => {
    cluster.allowedVerbs.clear()
    const denied = await doctor(cluster)
    assert.deepEqual(failedChecks(denied.stdout), [
      'RBAC: irsa-system/irsa-webhook can get serviceaccounts',
    ])
    cluster.allowedVerbs.add('get')
    const partial = await doctor(cluster)
    assert.equal(
      results(partial.stdout).get('RBAC: irsa-system/irsa-webhook can get serviceaccounts'),
      '!',
    )
  })

  test('a namespaceSelector that lets the webhook namespace in fails the exclusions check', async () => {
    withWebhook(cluster, (w) => ({
      ...w,
      namespaceSelector: {
        matchExpressions: [
          { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system'] },
        ],
      },
    }))
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), ['exclusions'])
    assert.match(run.stdout, /sends pods of irsa-system to the webhook/)
  })

  test('the dry-run pod fails for an unannotated ServiceAccount, an excluded namespace and an invalid role', async () => {
    cluster.putServiceAccount('default', 'plain', {})
    const plain = await doctor(cluster, '-s', 'default/plain')
    assert.deepEqual(failedChecks(plain.stdout), ['dry-run pod with default/plain'])
    assert.match(plain.stdout, /has no api\.vultr\.com\/role/)

    cluster.putServiceAccount('kube-system', 'app', { 'api.vultr.com/role': ROLE })
    const excluded = await doctor(cluster, '-s', 'kube-system/app')
    assert.match(
      excluded.stdout,
      /✘ dry-run pod with kube-system\/app — came back without AWS_ROLE_ARN=/,
    )

    cluster.putServiceAccount('default', 'broken', { 'api.vultr.com/role': 'nope' })
    const denied = await doctor(cluster, '-s', 'default/broken')
    assert.match(
      denied.stdout,
      /✘ dry-run pod with default\/broken — the API server refused the pod: HTTP 403: admission webhook "irsa\.vultr\.com" denied the request/,
    )
  })

  test('with the opt-in label profile a healthy installation still passes: the dry-run pod carries the label', async () => {
    // What deploy/components/opt-in-label adds (test/unit/manifests.test.ts renders it).
    withWebhook(cluster, (w) => {
      const selector = w['objectSelector'] as { matchExpressions: Json[] }
      selector.matchExpressions.push({
        key: 'api.vultr.com/irsa',
        operator: 'In',
        values: ['true'],
      })
      return { ...w, failurePolicy: 'Fail' }
    })
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), [])
    assert.equal(results(run.stdout).get('dry-run pod with default/app'), '✔')
    assert.equal(run.code, 0)
  })

  test('without --service-account the dry-run pod is skipped', async () => {
    const run = await runInProcess(['doctor', '--kubeconfig', cluster.api.kubeconfigPath])
    assert.equal(results(run.stdout).get('dry-run pod'), '-')
    assert.equal(run.code, 0)
  })

  /**
   * Runs doctor, checks that OIDC discovery is the one failed check, and returns its two lines:
   * `✘ OIDC discovery — <detail>` and its `fix:`.
   */
  async function oidcFailure(): Promise<{ detail: string; fix: string }> {
    const { stdout } = await doctor(cluster)
    assert.deepEqual(failedChecks(stdout), ['OIDC discovery'])
    const lines = stdout.split('\n')
    const at = lines.findIndex((line) => line.startsWith('✘ OIDC discovery — '))
    assert.ok(at >= 0, stdout)
    return {
      detail: (lines[at] ?? '').slice('✘ OIDC discovery — '.length),
      fix: (lines[at + 1] ?? '').trim(),
    }
  }

  test('OIDC discovery that the API server does not serve (404) points at the issuer flags', async () => {
    cluster.oidc.up = false
    const { detail, fix } = await oidcFailure()
    assert.equal(
      detail,
      'not served: GET /.well-known/openid-configuration → HTTP 404: the server could not find the requested resource',
    )
    assert.match(fix, /^fix: the API server has no issuer discovery: set --service-account-issuer/)
  })

  test('OIDC discovery denied by RBAC (403) points at the issuer-discovery ClusterRole, not the flags', async () => {
    cluster.api.forbid('/openid/v1/jwks')
    const { detail, fix } = await oidcFailure()
    assert.equal(
      detail,
      'forbidden by RBAC: GET /openid/v1/jwks → HTTP 403: forbidden: User "fake-user" cannot get path "/openid/v1/jwks"',
    )
    assert.match(fix, /--clusterrole=system:service-account-issuer-discovery/)
    assert.doesNotMatch(fix, /--service-account-issuer /)
  })

  test('any other OIDC answer is reported as received, and a dropped connection as no answer', async () => {
    cluster.api.fault({ path: '/openid/v1/jwks', status: 503 })
    const unexpected = await oidcFailure()
    assert.match(unexpected.detail, /^unexpected answer: GET \/openid\/v1\/jwks → HTTP 503: /)
    assert.match(unexpected.fix, /the issuer flags are not the cause/)
    cluster.api.clearFaults()
    cluster.api.fault({ path: '/.well-known/openid-configuration', destroy: 'before-headers' })
    const dropped = await oidcFailure()
    assert.match(dropped.detail, /^GET \/\.well-known\/openid-configuration: no answer \(/)
    assert.match(dropped.fix, /server address, the network/)
  })

  test('the JWKS is asked for as application/jwk-set+json, the one type kube-apiserver serves it as', async () => {
    const run = await doctor(cluster)
    assert.equal(results(run.stdout).get('OIDC discovery'), '✔')
    const accept = (path: string) =>
      cluster.api.requests.find((r) => r.path === path)?.headers.accept ?? ''
    assert.match(accept('/openid/v1/jwks'), /^application\/jwk-set\+json\b/)
    assert.equal(accept('/.well-known/openid-configuration'), 'application/json')
  })
})

describe('irsa-webhook doctor (knative)', () => {
  let cluster: FakeCluster
  beforeEach(async () => {
    cluster = await startFakeCluster('knative')
  })
  afterEach(() => cluster.close())

  test('a healthy Knative installation passes, detected as knative from the gateway alias', async () => {
    const run = await doctor(cluster)
    assert.equal(run.code, 0, run.stdout)
    assert.match(run.stdout, /mode knative/)
    const map = results(run.stdout)
    assert.equal(map.get('gateway namespace kourier-system'), '✔')
    assert.equal(map.get('Knative Service irsa-system/irsa-webhook'), '✔')
    assert.equal(map.get('DomainMapping irsa-system/irsa-webhook.kourier-system.svc'), '✔')
    assert.equal(map.get('ClusterDomainClaim irsa-webhook.kourier-system.svc'), '✔')
    assert.equal(map.get('endpoints of kourier-system/irsa-webhook'), '✔')
    assert.equal(map.get('caBundle verifies the serving certificate'), '✔')
  })

  test('a missing gateway namespace fails its check, with what to install first', async () => {
    // The namespace GET answers 404 as for a cluster without Kourier (the fake keeps no delete for namespaces).
    cluster.api.fault({ method: 'GET', path: '/api/v1/namespaces/kourier-system', status: 404 })
    const run = await doctor(cluster, '--mode', 'knative')
    assert.equal(run.code, 1)
    assert.deepEqual(failedChecks(run.stdout), ['gateway namespace kourier-system'])
    assert.match(
      run.stdout,
      /✘ gateway namespace kourier-system — not found: the gateway alias Service cannot be created there \(kubectl apply -k knative\/ fails with namespaces "kourier-system" not found\)\n {4}fix: install Knative Serving with Kourier first/,
    )
    // It comes first in Knative mode: the alias Service checks depend on it.
    assert.match(
      run.stdout,
      /^irsa-webhook doctor: .*\n✔ MutatingWebhookConfiguration [^\n]*\n✘ gateway namespace/,
    )
  })

  test('a DomainMapping that is not Ready fails its check', async () => {
    cluster.api.putObject(
      '/apis/serving.knative.dev/v1beta1/namespaces/irsa-system/domainmappings',
      {
        apiVersion: 'serving.knative.dev/v1beta1',
        kind: 'DomainMapping',
        metadata: { name: 'irsa-webhook.kourier-system.svc', namespace: 'irsa-system' },
        spec: { ref: { name: 'irsa-webhook' }, tls: { secretName: 'irsa-webhook-tls' } },
        status: { conditions: [{ type: 'Ready', status: 'False', reason: 'DomainClaimNotOwned' }] },
      },
    )
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), [
      'DomainMapping irsa-system/irsa-webhook.kourier-system.svc',
    ])
    assert.match(run.stdout, /Ready=False \(DomainClaimNotOwned\)/)
  })

  test('a ClusterDomainClaim for another namespace and a Knative Service not Ready fail their checks', async () => {
    cluster.api.putObject('/apis/networking.internal.knative.dev/v1alpha1/clusterdomainclaims', {
      metadata: { name: 'irsa-webhook.kourier-system.svc' },
      spec: { namespace: 'default' },
    })
    cluster.api.putObject('/apis/serving.knative.dev/v1/namespaces/irsa-system/services', {
      metadata: { name: 'irsa-webhook', namespace: 'irsa-system' },
      status: { conditions: [{ type: 'Ready', status: 'False', reason: 'RevisionMissing' }] },
    })
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), [
      'Knative Service irsa-system/irsa-webhook',
      'ClusterDomainClaim irsa-webhook.kourier-system.svc',
    ])
  })

  test('a namespaceSelector that lets the gateway namespace in fails the exclusions check', async () => {
    withWebhook(cluster, (w) => ({
      ...w,
      namespaceSelector: {
        matchExpressions: [
          {
            key: 'kubernetes.io/metadata.name',
            operator: 'NotIn',
            values: ['kube-system', 'irsa-system', 'knative-serving'],
          },
        ],
      },
    }))
    const run = await doctor(cluster)
    assert.deepEqual(failedChecks(run.stdout), ['exclusions'])
    assert.match(run.stdout, /sends pods of kourier-system/)
  })
})
