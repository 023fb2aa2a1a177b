// irsa-webhook oidc-issuer: Vultr registration payloads from the cluster's discovery documents.
import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import {
  type FakeCluster,
  ISSUER,
  runChild,
  runInProcess,
  startFakeCluster,
} from '../../support/cli-fake-cluster.ts'
import { createSigningKey } from '../../support/jwt.ts'

function payloads(stdout: string): Record<string, unknown>[] {
  return stdout
    .split(/\n(?=\{)/)
    .filter((part) => part.trim() !== '')
    .map((part) => JSON.parse(part))
}

describe('irsa-webhook oidc-issuer', () => {
  let cluster: FakeCluster
  const issuer = (...extra: string[]) =>
    runInProcess(['oidc-issuer', '--kubeconfig', cluster.api.kubeconfigPath, ...extra])
  beforeEach(async () => {
    cluster = await startFakeCluster('classic')
  })
  afterEach(() => cluster.close())

  test('prints the external payload for the signing key, read through the kubeconfig (child process)', async () => {
    const run = await runChild(['oidc-issuer', '--kubeconfig', cluster.api.kubeconfigPath])
    assert.equal(run.code, 0, run.stderr)
    assert.deepEqual(payloads(run.stdout), [
      { source: 'external', uri: `${ISSUER}/openid/v1/jwks`, ...cluster.key.publicJwk },
    ])
    assert.match(run.stderr, /^issuer: https:\/\/oidc\.vke\.example\.test\/cluster-1$/m)
    assert.doesNotMatch(run.stderr, /warning/)
    const paths = cluster.api.requests.map(
      (r) => `${r.method} ${r.path} ${r.headers.authorization}`,
    )
    assert.ok(paths.includes('GET /.well-known/openid-configuration Bearer fake-token'))
    assert.ok(paths.includes('GET /openid/v1/jwks Bearer fake-token'))
  })

  test('--vke-cluster-id prints the vke form without contacting a cluster; a non-UUID is a usage error', async () => {
    const id = 'a070d34b-8380-441a-8fb4-d5a9c4001226'
    const run = await runInProcess(['oidc-issuer', '--vke-cluster-id', id])
    assert.equal(run.code, 0)
    assert.deepEqual(JSON.parse(run.stdout), { source: 'vke', source_id: id })
    assert.equal(cluster.api.requests.length, 0)
    const bad = await runInProcess(['oidc-issuer', '--vke-cluster-id', 'my-cluster'])
    assert.equal(bad.code, 2)
  })

  test('two signing keys give two payloads and a rotation warning; non-RSA keys are skipped', async () => {
    const next = await createSigningKey('cluster-key-2')
    cluster.oidc.keys.push(next.publicJwk, {
      kid: 'ec-1',
      kty: 'EC',
      crv: 'P-256',
      x: 'x',
      y: 'y',
      use: 'sig',
    })
    const run = await issuer()
    assert.equal(run.code, 0)
    assert.deepEqual(
      payloads(run.stdout).map((p) => p['kid']),
      ['cluster-key-1', 'cluster-key-2'],
    )
    assert.match(
      run.stderr,
      /warning: 3 signing keys \(key rotation\?\): register one payload per key/,
    )
    assert.match(run.stderr, /warning: key ec-1 \(EC\) is not an RSA signing key; skipped/)
  })

  test('warns when the issuer differs from --expected-issuer and from the private jwks_uri host', async () => {
    cluster.oidc.jwksUri = 'https://10.0.0.1:6443/openid/v1/jwks'
    const run = await issuer('--expected-issuer', 'https://api.vultr.com/v2/oidc')
    assert.equal(run.code, 0)
    assert.match(
      run.stderr,
      /warning: the cluster's issuer is https:\/\/oidc\.vke\.example\.test\/cluster-1, not the expected https:\/\/api\.vultr\.com\/v2\/oidc/,
    )
    assert.match(run.stderr, /warning: the issuer .* is not on the jwks_uri host 10\.0\.0\.1:6443/)
    assert.match(run.stderr, /warning: the jwks_uri host 10\.0\.0\.1:6443 is private or in-cluster/)
    assert.equal(payloads(run.stdout)[0]?.['uri'], 'https://10.0.0.1:6443/openid/v1/jwks')
  })

  test('--token-from compares the iss of a real TokenRequest token with the discovery issuer', async () => {
    const same = await issuer('--token-from', 'default/app')
    assert.doesNotMatch(same.stderr, /warning/)
    cluster.oidc.tokenIssuer = 'https://kubernetes.default.svc.cluster.local'
    const differs = await issuer('--token-from', 'default/app')
    assert.match(
      differs.stderr,
      /warning: tokens carry iss "https:\/\/kubernetes\.default\.svc\.cluster\.local" but discovery says https:\/\/oidc\.vke\.example\.test\/cluster-1/,
    )
    assert.ok(
      cluster.api.requests.some(
        (r) =>
          r.method === 'POST' && r.path === '/api/v1/namespaces/default/serviceaccounts/app/token',
      ),
    )
  })

  test('fails (exit 1) when discovery is not served, is forbidden, or the JWKS has no RSA key', async () => {
    cluster.oidc.up = false
    const down = await issuer()
    assert.equal(down.code, 1)
    assert.match(down.stderr, /GET \/\.well-known\/openid-configuration → HTTP 404/)
    cluster.oidc.up = true
    cluster.api.forbid('/openid/v1/jwks')
    const denied = await issuer()
    cluster.api.clearForbidden()
    assert.equal(denied.code, 1)
    assert.equal(
      denied.stderr,
      'irsa-webhook oidc-issuer: GET /openid/v1/jwks → HTTP 403: forbidden: User "fake-user" cannot get path "/openid/v1/jwks"\n',
    )
    cluster.oidc.keys.splice(0, 1, { kid: 'ec-1', kty: 'EC', use: 'sig' })
    const noRsa = await issuer()
    assert.equal(noRsa.code, 1)
    assert.equal(noRsa.stdout, '')
    assert.match(noRsa.stderr, /no RSA signing key/)
  })
})
