/**
 * `irsa-webhook oidc-issuer` against the real kube-apiserver's discovery document and JWKS: the payload carries the
 * API server's own signing key (the harness's pki/sa.pub, compared as a JWK), its kid is the one the API server
 * derives from that key and puts in every token, and a real TokenRequest token verifies with the payload's n/e —
 * what Vultr does with it. A user without the discovery ClusterRole gets the API server's 403, exit 1.
 */
import assert from 'node:assert/strict'
import { createHash, createPublicKey, verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { runCli } from '../support/cluster-cli.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'

const cluster = await controlPlane()

interface Payload {
  source: string
  uri: string
  kid: string
  kty: string
  n: string
  e: string
  alg: string
  use: string
}

/** The payloads on stdout: one pretty-printed JSON object per signing key. */
function payloadsOf(stdout: string): Payload[] {
  return stdout
    .split(/\n(?=\{)/)
    .filter((part) => part.trim() !== '')
    .map((part) => JSON.parse(part) as Payload)
}

const decode = (part: string | undefined) =>
  JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as Record<string, unknown>

describe('oidc-issuer on a real kube-apiserver', { skip: cluster.skip }, () => {
  let cp: ControlPlane
  let namespace: string
  before(async () => {
    cp = usable(cluster)
    namespace = await cp.namespace('cli-oidc')
  })

  it("prints the API server's signing key: uri, kid, n and e match pki/sa.pub", async () => {
    const run = await runCli(['oidc-issuer'], { kubeconfig: cp.kubeconfig })
    assert.equal(run.code, 0, run.stderr)
    const payloads = payloadsOf(run.stdout)
    assert.equal(payloads.length, 1, run.stdout)
    const payload = payloads[0] as Payload
    // The key the API server signs with (--service-account-signing-key-file; sa.pub is its public half).
    const publicKey = createPublicKey(readFileSync(join(cp.dir, 'pki/sa.pub')))
    const jwk = publicKey.export({ format: 'jwk' })
    assert.equal(payload.n, jwk.n)
    assert.equal(payload.e, jwk.e)
    assert.deepEqual(
      { source: payload.source, kty: payload.kty, alg: payload.alg, use: payload.use },
      { source: 'external', kty: 'RSA', alg: 'RS256', use: 'sig' },
    )
    // kube-apiserver names the key by the SHA-256 of its DER (PKIX) encoding, base64url
    // (k8s.io/kubernetes pkg/serviceaccount/jwt.go, keyIDFromPublicKey).
    const kid = createHash('sha256')
      .update(publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64url')
    assert.equal(payload.kid, kid)
    // The issuer is the API server (--service-account-issuer) and serves the JWKS itself.
    assert.equal(payload.uri, `${cp.issuer}/openid/v1/jwks`)
    assert.match(run.stderr, new RegExp(`^issuer: ${cp.issuer}$`, 'm'))
    // A loopback jwks_uri is private: the CLI says the payload carries the key itself.
    assert.match(run.stderr, /warning: the jwks_uri host 127\.0\.0\.1:\d+ is private or in-cluster/)
  })

  it('a real TokenRequest token for audience vultr verifies with the payload (as Vultr checks it)', async () => {
    const run = await runCli(['oidc-issuer'], { kubeconfig: cp.kubeconfig })
    assert.equal(run.code, 0, run.stderr)
    const payload = payloadsOf(run.stdout)[0] as Payload
    const token = (
      await cp.kubectlOk(['create', 'token', 'default', '-n', namespace, '--audience=vultr'])
    ).trim()
    const [header, claims, signature] = token.split('.')
    assert.equal(decode(header)['kid'], payload.kid)
    assert.equal(decode(claims)['iss'], cp.issuer)
    assert.deepEqual(decode(claims)['aud'], ['vultr'])
    const key = createPublicKey({ key: { kty: 'RSA', n: payload.n, e: payload.e }, format: 'jwk' })
    const signed = Buffer.from(`${header}.${claims}`)
    assert.equal(verify('sha256', signed, key, Buffer.from(signature ?? '', 'base64url')), true)
    // …and a token whose claims were changed does not.
    const forged = Buffer.from(`${header}.${Buffer.from('{"iss":"x"}').toString('base64url')}`)
    assert.equal(verify('sha256', forged, key, Buffer.from(signature ?? '', 'base64url')), false)
  })

  it('--token-from checks a real TokenRequest token: its iss and kid agree, no warning', async () => {
    const run = await runCli(['oidc-issuer', '--token-from', `${namespace}/default`], {
      kubeconfig: cp.kubeconfig,
    })
    assert.equal(run.code, 0, run.stderr)
    assert.doesNotMatch(run.stderr, /TokenRequest|tokens carry iss|not in the JWKS/)
    assert.equal(payloadsOf(run.stdout).length, 1)
  })

  it("--token-from a ServiceAccount that does not exist: the API server's 404 as a warning", async () => {
    const run = await runCli(['oidc-issuer', '--token-from', `${namespace}/ghost`], {
      kubeconfig: cp.kubeconfig,
    })
    assert.equal(run.code, 0, run.stderr)
    assert.match(
      run.stderr,
      new RegExp(
        `^warning: TokenRequest for ${namespace}/ghost failed: HTTP 404: serviceaccounts "ghost" not found$`,
        'm',
      ),
    )
  })

  it("--token-from with credentials that may not request tokens: the API server's 403 as a warning", async () => {
    // A ServiceAccount token: discovery is allowed (system:serviceaccounts has the discovery ClusterRole), but not
    // serviceaccounts/token.
    const kubeconfig = await cp.serviceAccountKubeconfig(namespace, 'default')
    const run = await runCli(['oidc-issuer', '--token-from', `${namespace}/default`], {
      kubeconfig,
    })
    assert.equal(run.code, 0, run.stderr)
    assert.equal(payloadsOf(run.stdout).length, 1)
    assert.match(
      run.stderr,
      new RegExp(
        `^warning: TokenRequest for ${namespace}/default failed: HTTP 403: serviceaccounts "default" is forbidden: ` +
          `User "system:serviceaccount:${namespace}:default" cannot create resource "serviceaccounts/token" in API group "" in the namespace "${namespace}"$`,
        'm',
      ),
    )
  })

  it("a user without system:service-account-issuer-discovery: exit 1 with the API server's 403", async () => {
    // Default RBAC binds the discovery ClusterRole to system:serviceaccounts only; a certificate user in no group
    // has it not.
    const kubeconfig = await cp.userKubeconfig('nobody')
    const run = await runCli(['oidc-issuer'], { kubeconfig })
    assert.equal(run.code, 1)
    assert.equal(run.stdout, '')
    assert.equal(
      run.stderr,
      'irsa-webhook oidc-issuer: GET /.well-known/openid-configuration → HTTP 403: forbidden: User "nobody" cannot get path "/.well-known/openid-configuration"\n',
    )
  })
})
