// Test signing keys and Kubernetes-shaped projected ServiceAccount tokens.
// The JWKS this exposes has the same members Vultr's external OIDC issuer registration asks for.
import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey']

export interface PublicJwk {
  kid: string
  kty: string
  n: string
  e: string
  alg: 'RS256'
  use: 'sig'
}

export interface Jwks {
  keys: PublicJwk[]
}

export interface SigningKey {
  kid: string
  privateKey: PrivateKey
  publicJwk: PublicJwk
  jwks: Jwks
}

export interface ServiceAccountTokenOptions {
  issuer: string
  namespace: string
  serviceAccount: string
  /** The `aud` claim; Kubernetes always issues an array. Default `['vultr']`. */
  audience?: string[]
  /** Lifetime in seconds from `now`; a negative value gives an already expired token. Default 86400. */
  expiresIn?: number
  /** Unix seconds used as `iat`/`nbf`. Default: the current time. */
  now?: number
}

/** Generates an RS256 key pair; pass the same `kid` to a second key to forge a "wrong key" token. */
export async function createSigningKey(kid = 'irsa-test-key'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = await exportJWK(publicKey)
  if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') {
    throw new Error('exported RSA public key has no modulus/exponent')
  }
  const publicJwk: PublicJwk = { kid, kty: 'RSA', n: jwk.n, e: jwk.e, alg: 'RS256', use: 'sig' }
  return { kid, privateKey, publicJwk, jwks: { keys: [publicJwk] } }
}

/** Signs a token shaped like the kubelet's projected serviceAccountToken (TokenRequest API). */
export async function signServiceAccountToken(
  key: SigningKey,
  options: ServiceAccountTokenOptions,
): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000)
  const claims = {
    'kubernetes.io': {
      namespace: options.namespace,
      pod: { name: 'irsa-single', uid: randomUUID() },
      serviceaccount: { name: options.serviceAccount, uid: randomUUID() },
    },
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: key.kid })
    .setIssuer(options.issuer)
    .setSubject(`system:serviceaccount:${options.namespace}:${options.serviceAccount}`)
    .setAudience(options.audience ?? ['vultr'])
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + (options.expiresIn ?? 86400))
    .setJti(randomUUID())
    .sign(key.privateKey)
}
