/**
 * `irsa-webhook oidc-issuer`: prints the payload(s) for Vultr's `POST /v2/oidc/issuer`.
 * @module
 */
import { parseArgs } from 'node:util'
import { UUID } from '../../function/identity.ts'
import { DEFAULTS } from '../../function/names.ts'
import { EXIT, type Io, splitRef, UsageError } from '../shared/io.ts'
import { createKubeClient, type KubeClient, loadKubeConfig, statusMessage } from '../shared/kube.ts'
import {
  externalPayloads,
  fetchOidcDocuments,
  issuerWarnings,
  type OidcDocuments,
  tokenWarnings,
} from '../shared/oidc.ts'

const OIDC_ISSUER_USAGE = `Usage: irsa-webhook oidc-issuer [options]

Prints the JSON body for Vultr's POST https://api.vultr.com/v2/oidc/issuer.
  VKE cluster:   {"source":"vke","source_id":"<cluster id>"} (no cluster access needed)
  other cluster: one {"source":"external","uri","kid","kty","n","e","alg","use"} per signing key, read from
                 /.well-known/openid-configuration and /openid/v1/jwks through the kubeconfig

Options:
      --vke-cluster-id ID        the VKE cluster's id (a UUID)
      --kubeconfig PATH          kubeconfig (default: $KUBECONFIG, ~/.kube/config)
      --expected-issuer URL      warn unless the cluster's issuer is exactly this
      --token-from NS/NAME       also request a short token for this ServiceAccount (TokenRequest, audience
                                 vultr) and check its iss and kid against the documents

Warnings go to stderr. Exit code 1 when the documents cannot be read or hold no RSA signing key.`

function parseOidcArgs(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      'vke-cluster-id': { type: 'string' },
      kubeconfig: { type: 'string' },
      'expected-issuer': { type: 'string' },
      'token-from': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const vke = values['vke-cluster-id']
  if (vke !== undefined && !UUID.test(vke)) {
    throw new UsageError(`--vke-cluster-id must be the cluster's UUID, got ${JSON.stringify(vke)}`)
  }
  return values
}

/** Asks the cluster for a token (TokenRequest) and returns it, or a warning why it could not. */
async function requestToken(
  client: KubeClient,
  ref: string,
): Promise<{ token?: string; warning?: string }> {
  const { namespace, name } = splitRef(ref, 'default')
  const path = `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`
  const response = await client.request('POST', path, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { audiences: [DEFAULTS.audience], expirationSeconds: 600 },
  })
  const token = (response.body as { status?: { token?: unknown } } | undefined)?.status?.token
  if (response.status === 201 || response.status === 200) {
    if (typeof token === 'string') return { token }
  }
  return { warning: `TokenRequest for ${namespace}/${name} failed: ${statusMessage(response)}` }
}

async function collectWarnings(
  client: KubeClient,
  documents: OidcDocuments,
  values: ReturnType<typeof parseOidcArgs>,
): Promise<string[]> {
  const warnings = issuerWarnings(documents, values['expected-issuer'])
  const ref = values['token-from']
  if (ref === undefined) return warnings
  const { token, warning } = await requestToken(client, ref)
  if (warning !== undefined) warnings.push(warning)
  if (token !== undefined) warnings.push(...tokenWarnings(documents, token))
  return warnings
}

const HINT =
  'register each payload: curl -X POST https://api.vultr.com/v2/oidc/issuer ' +
  '-H "Authorization: Bearer $VULTR_API_KEY" -H "Content-Type: application/json" -d @payload.json'

/** Runs `oidc-issuer`; returns the exit code. */
export async function runOidcIssuer(argv: string[], io: Io): Promise<number> {
  const values = parseOidcArgs(argv)
  if (values.help) {
    io.out(`${OIDC_ISSUER_USAGE}\n`)
    return EXIT.ok
  }
  const vke = values['vke-cluster-id']
  if (vke !== undefined) {
    io.out(`${JSON.stringify({ source: 'vke', source_id: vke }, null, 2)}\n`)
    return EXIT.ok
  }
  const client = createKubeClient(loadKubeConfig(values.kubeconfig))
  const documents = await fetchOidcDocuments(client)
  const { payloads, warnings } = externalPayloads(documents)
  warnings.push(...(await collectWarnings(client, documents, values)))
  io.err(`issuer: ${documents.discovery.issuer}\njwks_uri: ${documents.discovery.jwks_uri}\n`)
  for (const warning of warnings) io.err(`warning: ${warning}\n`)
  if (payloads.length === 0) {
    io.err('error: the JWKS holds no RSA signing key to register\n')
    return EXIT.failed
  }
  for (const payload of payloads) io.out(`${JSON.stringify(payload, null, 2)}\n`)
  io.err(`${HINT}\n`)
  return EXIT.ok
}
