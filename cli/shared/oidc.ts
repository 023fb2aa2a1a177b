/**
 * The cluster's OIDC discovery documents, and the Vultr `POST /v2/oidc/issuer` payloads made from them. The
 * fetching is through the kubeconfig; the rest is pure.
 * @module
 */
import type { KubeClient } from './kube.ts'
import { ACCEPT_JSON, statusMessage } from './kube.ts'

const DISCOVERY_PATH = '/.well-known/openid-configuration'
const JWKS_PATH = '/openid/v1/jwks'

/**
 * kube-apiserver serves the discovery document as `application/json` and the key set only as
 * `application/jwk-set+json` (kubernetes pkg/routes/openidmetadata.go, `mimeJWKS`); any other Accept gets
 * `406 … Available representations: application/jwk-set+json`. `application/json` stays listed for issuers that
 * serve the key set as plain JSON (go-restful ignores the q-value; it only needs one listed type to match).
 */
const OIDC_ACCEPT = {
  discovery: ACCEPT_JSON,
  jwks: 'application/jwk-set+json, application/json;q=0.9',
} as const

/** Why a discovery document could not be read: `status` is the HTTP status, undefined when no answer came. */
export class OidcReadError extends Error {
  override readonly name = 'OidcReadError'
  readonly status: number | undefined
  constructor(status: number | undefined, message: string) {
    super(message)
    this.status = status
  }
}

interface Discovery {
  readonly issuer: string
  readonly jwks_uri: string
}

interface Jwk {
  readonly kid?: string
  readonly kty?: string
  readonly n?: string
  readonly e?: string
  readonly alg?: string
  readonly use?: string
}

interface ExternalPayload {
  readonly source: 'external'
  readonly uri: string
  readonly kid: string
  readonly kty: 'RSA'
  readonly n: string
  readonly e: string
  readonly alg: string
  readonly use: string
}

export interface OidcDocuments {
  readonly discovery: Discovery
  readonly keys: readonly Jwk[]
}

async function getJson(client: KubeClient, path: string, accept: string): Promise<unknown> {
  let response: Awaited<ReturnType<KubeClient['get']>>
  try {
    response = await client.get(path, accept)
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new OidcReadError(undefined, `GET ${path}: no answer (${reason})`)
  }
  if (response.status !== 200 || response.body === undefined) {
    throw new OidcReadError(response.status, `GET ${path} → ${statusMessage(response)}`)
  }
  return response.body
}

/** Reads discovery and JWKS through the API server (both need `system:service-account-issuer-discovery`). */
export async function fetchOidcDocuments(client: KubeClient): Promise<OidcDocuments> {
  const discovery = (await getJson(
    client,
    DISCOVERY_PATH,
    OIDC_ACCEPT.discovery,
  )) as Partial<Discovery>
  if (typeof discovery.issuer !== 'string' || typeof discovery.jwks_uri !== 'string') {
    throw new Error(`${DISCOVERY_PATH} has no issuer or jwks_uri`)
  }
  const jwks = (await getJson(client, JWKS_PATH, OIDC_ACCEPT.jwks)) as { keys?: unknown }
  if (!Array.isArray(jwks.keys)) throw new Error(`${JWKS_PATH} has no keys array`)
  return {
    discovery: { issuer: discovery.issuer, jwks_uri: discovery.jwks_uri },
    keys: jwks.keys as Jwk[],
  }
}

/** One `external` payload per RSA signing key; other keys are reported, not registered. */
export function externalPayloads(documents: OidcDocuments): {
  payloads: ExternalPayload[]
  warnings: string[]
} {
  const payloads: ExternalPayload[] = []
  const warnings: string[] = []
  for (const key of documents.keys) {
    const { kid, kty, n, e } = key
    if (kty !== 'RSA' || !kid || !n || !e || (key.use !== undefined && key.use !== 'sig')) {
      warnings.push(
        `key ${kid ?? '(no kid)'} (${kty ?? 'no kty'}) is not an RSA signing key; skipped`,
      )
      continue
    }
    const uri = documents.discovery.jwks_uri
    const alg = key.alg ?? 'RS256'
    payloads.push({ source: 'external', uri, kid, kty, n, e, alg, use: key.use ?? 'sig' })
  }
  return { payloads, warnings }
}

const PRIVATE_HOST =
  /^(localhost|127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|\[?::1\]?$|\[?f[cd])|\.(svc|local|cluster\.local|internal)$/i

/** Warnings about the issuer setup: mismatches Vultr would reject tokens for, and key rotation. */
export function issuerWarnings(
  documents: OidcDocuments,
  expectedIssuer: string | undefined,
): string[] {
  const { issuer, jwks_uri } = documents.discovery
  const warnings: string[] = []
  if (expectedIssuer !== undefined && expectedIssuer !== issuer) {
    warnings.push(
      `the cluster's issuer is ${issuer}, not the expected ${expectedIssuer}: tokens carry iss ${issuer} ` +
        '(set the API server flag --service-account-issuer, or expect what it says)',
    )
  }
  const issuerHost = URL.canParse(issuer) ? new URL(issuer).host : issuer
  const jwksHost = URL.canParse(jwks_uri) ? new URL(jwks_uri).host : jwks_uri
  if (issuerHost !== jwksHost) {
    warnings.push(
      `the issuer ${issuer} (the iss in every token) is not on the jwks_uri host ${jwksHost}: ` +
        'make sure Vultr trusts that exact iss',
    )
  }
  if (PRIVATE_HOST.test(jwksHost.replace(/:\d+$/, ''))) {
    warnings.push(
      `the jwks_uri host ${jwksHost} is private or in-cluster: the payload carries the key itself, ` +
        're-register after every key rotation',
    )
  }
  if (documents.keys.length > 1) {
    warnings.push(
      `${documents.keys.length} signing keys (key rotation?): register one payload per key; ` +
        'tokens name theirs in the kid header',
    )
  }
  return warnings
}

/** Reads a JWT's header and claims without verifying it (the cluster just issued it to us). */
function decodeJwt(token: string): {
  header: Record<string, unknown>
  claims: Record<string, unknown>
} {
  const [header, claims] = token.split('.')
  const decode = (part: string | undefined) =>
    JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
  return { header: decode(header), claims: decode(claims) }
}

/** Warnings from a token the cluster really issued: its iss and kid against the discovery documents. */
export function tokenWarnings(documents: OidcDocuments, token: string): string[] {
  const { header, claims } = decodeJwt(token)
  const warnings: string[] = []
  if (claims['iss'] !== documents.discovery.issuer) {
    warnings.push(
      `tokens carry iss ${JSON.stringify(claims['iss'])} but discovery says ${documents.discovery.issuer}`,
    )
  }
  if (!documents.keys.some((key) => key.kid === header['kid'])) {
    warnings.push(`the token's key ${JSON.stringify(header['kid'])} is not in the JWKS`)
  }
  return warnings
}
