/**
 * A fake cluster with irsa-webhook installed, for the CLI tests: the shipped manifests (deploy/ or knative/) in the
 * loopback fake kube-apiserver, a serving certificate signed by the caBundle, RBAC answered by SubjectAccessReview,
 * OIDC discovery and JWKS, and pod creation that runs the REAL webhook (test/support/webhook.ts `admit`).
 * Each test breaks one thing and expects exactly the matching doctor check to fail.
 * @module
 */
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { runCli } from '../../cli/main.ts'
import { selects } from '../../cli/shared/selector.ts'
import type { LabelSelector } from '../../cli/shared/webhook-configuration.ts'
import { parseYamlDocuments } from '../../function/yaml.ts'
import {
  type FakeKubeApi,
  kubeStatus,
  type RecordedRequest,
  startFakeKubeApi,
} from './fake-kube-api.ts'
import { type FakePods, installPods } from './fake-kube-api-pods.ts'
import { createSigningKey, type SigningKey, signServiceAccountToken } from './jwt.ts'
import { ROOT } from './process.ts'
import { createTestCertificates, type TestCertificates } from './tls.ts'
import { admit } from './webhook.ts'

export { ROOT }
export const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
export const ISSUER = 'https://oidc.vke.example.test/cluster-1'
export const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations'

type Json = Record<string, unknown>

/** The documents of a shipped manifest, as plain JSON. */
export function manifest(path: string): Json[] {
  return parseYamlDocuments(readFileSync(`${ROOT}${path}`, 'utf8')) as Json[]
}

export interface FakeCluster {
  readonly api: FakeKubeApi
  /** Stored pods (the audit's routes: LIST, GET, eviction, events). */
  readonly pods: FakePods
  readonly mode: 'classic' | 'knative'
  readonly certs: TestCertificates
  readonly key: SigningKey
  /** Verbs the webhook's ServiceAccount may use on serviceaccounts. */
  readonly allowedVerbs: Set<string>
  /** When false, pod creation fails like an unreachable webhook with failurePolicy Fail, with `webhookDownError`. */
  webhookUp: boolean
  /** How the API server reports the unreachable webhook (one of `WEBHOOK_UNREACHABLE`; default the ClusterIP form). */
  webhookDownError: string
  /** What the OIDC routes serve (edit to break them). */
  readonly oidc: {
    issuer: string
    jwksUri: string
    keys: object[]
    tokenIssuer: string
    up: boolean
  }
  /** The stored MutatingWebhookConfiguration (edit and `putWebhook` to break it). */
  readonly webhookConfiguration: Json
  putWebhook(configuration: Json): void
  putServiceAccount(namespace: string, name: string, annotations: Record<string, string>): void
  close(): Promise<void>
}

/**
 * How kube-apiserver reports a webhook Service with no ready pod (after `Post "https://…/mutate?timeout=10s": `). By
 * default it dials the Service's ClusterIP (k8s.io/apiserver/pkg/util/proxy/proxy.go `ResolveCluster`): refused, or
 * a timeout when packets are dropped; only with --enable-aggregator-routing does it pick an endpoint itself
 * (`ResolveEndpoint`) and answer "no endpoints available".
 */
export const WEBHOOK_UNREACHABLE = {
  refused: 'dial tcp 10.96.143.7:443: connect: connection refused',
  timeout: 'context deadline exceeded',
  aggregatorRouting: 'no endpoints available for service "irsa-webhook"',
} as const

function serviceHostFor(mode: 'classic' | 'knative'): string {
  return mode === 'classic' ? 'irsa-webhook.irsa-system.svc' : 'irsa-webhook.kourier-system.svc'
}

function endpointSlice(namespace: string, service: string, ready: boolean): Json {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${service}-abcde`,
      namespace,
      labels: { 'kubernetes.io/service-name': service },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.7'], conditions: { ready } }],
    ports: [{ name: 'https', port: 8443 }],
  }
}

/** Puts (or replaces) the EndpointSlice of the webhook's Service. */
export function putEndpoints(cluster: FakeCluster, ready: boolean): void {
  const namespace = cluster.mode === 'classic' ? 'irsa-system' : 'kourier-system'
  cluster.api.putObject(
    `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
    endpointSlice(namespace, 'irsa-webhook', ready),
  )
}

/** Puts the serving certificate Secret. */
export function putCertificateSecret(cluster: FakeCluster, certPem: string, name?: string): void {
  const secret = name ?? (cluster.mode === 'classic' ? 'irsa-webhook-certs' : 'irsa-webhook-tls')
  cluster.api.putObject('/api/v1/namespaces/irsa-system/secrets', {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secret, namespace: 'irsa-system' },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(certPem).toString('base64'), 'tls.key': '' },
  })
}

const READY = { conditions: [{ type: 'Ready', status: 'True' }] }

function installKnative(api: FakeKubeApi): void {
  const [claim, mapping] = manifest('knative/base/domainmapping.yaml')
  api.putObject('/apis/networking.internal.knative.dev/v1alpha1/clusterdomainclaims', claim ?? {})
  api.putObject('/apis/serving.knative.dev/v1beta1/namespaces/irsa-system/domainmappings', {
    ...mapping,
    status: READY,
  })
  api.putObject('/apis/serving.knative.dev/v1/namespaces/irsa-system/services', {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name: 'irsa-webhook', namespace: 'irsa-system' },
    status: READY,
  })
  const [alias] = manifest('knative/base/gateway-alias.yaml')
  api.putObject('/api/v1/namespaces/kourier-system/services', alias ?? {})
}

function putNamespaces(api: FakeKubeApi): void {
  for (const name of [
    'irsa-system',
    'kube-system',
    'default',
    'knative-serving',
    'kourier-system',
  ]) {
    api.putObject('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
    })
  }
}

function sarAnswer(cluster: FakeCluster, req: RecordedRequest) {
  const review = JSON.parse(req.body) as {
    spec: { user: string; resourceAttributes: { verb: string; resource: string } }
  }
  const { user, resourceAttributes } = review.spec
  const allowed =
    user === 'system:serviceaccount:irsa-system:irsa-webhook' &&
    resourceAttributes.resource === 'serviceaccounts' &&
    cluster.allowedVerbs.has(resourceAttributes.verb)
  return { status: 201, body: { ...review, status: { allowed } } }
}

function namespaceSelected(configuration: Json, namespace: string): boolean {
  const webhook = (configuration['webhooks'] as Json[])[0] ?? {}
  const selector = webhook['namespaceSelector'] as {
    matchExpressions?: { key: string; operator: string; values: string[] }[]
  }
  return !(selector?.matchExpressions ?? []).some(
    (e) =>
      e.key === 'kubernetes.io/metadata.name' &&
      e.operator === 'NotIn' &&
      e.values.includes(namespace),
  )
}

/**
 * The webhook's objectSelector against the pod's labels: kube-apiserver calls a webhook only when both its
 * namespaceSelector and objectSelector match (apiserver pkg/admission/plugin/webhook/predicates/object/matcher.go).
 */
function objectSelected(configuration: Json, pod: Json): boolean {
  const webhook = (configuration['webhooks'] as Json[])[0] ?? {}
  const labels = ((pod['metadata'] as Json | undefined)?.['labels'] ?? {}) as Record<string, string>
  return selects(webhook['objectSelector'] as LabelSelector | undefined, labels)
}

async function createPod(cluster: FakeCluster, serviceAccounts: Json[], req: RecordedRequest) {
  const namespace = /\/namespaces\/([^/]+)\/pods$/.exec(req.path)?.[1] ?? 'default'
  const pod = JSON.parse(req.body) as Json
  if (
    !namespaceSelected(cluster.webhookConfiguration, namespace) ||
    !objectSelected(cluster.webhookConfiguration, pod)
  ) {
    return { status: 201, body: pod }
  }
  if (!cluster.webhookUp) {
    return kubeStatus(
      500,
      'Internal error occurred: failed calling webhook "irsa.vultr.com": failed to call webhook: ' +
        `Post "https://irsa-webhook.irsa-system.svc:443/mutate?timeout=10s": ${cluster.webhookDownError}`,
    )
  }
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace,
      dryRun: req.query.get('dryRun') === 'All',
      object: pod,
    },
  }
  const result = await admit(review, serviceAccounts)
  if (result.status !== 200) {
    // The webhook's Status body reaches the user through the dispatcher (failurePolicy Fail) as
    // apiserver pkg/admission/plugin/webhook/mutating/dispatcher.go + pkg/util/webhook/error.go word it.
    return kubeStatus(
      500,
      'Internal error occurred: failed calling webhook "irsa.vultr.com": failed to call webhook: ' +
        String(result.body?.message),
    )
  }
  const response = result.body.response as { allowed: boolean; status?: { message?: string } }
  if (!response.allowed) {
    return kubeStatus(
      403,
      `admission webhook "irsa.vultr.com" denied the request: ${response.status?.message ?? ''}`,
    )
  }
  return { status: 201, body: result.mutatedPod }
}

function routeOidc(cluster: FakeCluster): void {
  const { api, oidc } = cluster
  // The fake answers both discovery paths as kube-apiserver does, content negotiation and 404 included.
  api.serveOpenIdMetadata(() =>
    oidc.up ? { issuer: oidc.issuer, jwksUri: oidc.jwksUri, keys: oidc.keys } : undefined,
  )
  api.route(
    'POST',
    /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token$/,
    async (req) => {
      const [, namespace = '', name = ''] =
        /namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token$/.exec(req.path) ?? []
      const token = await signServiceAccountToken(cluster.key, {
        issuer: oidc.tokenIssuer,
        namespace,
        serviceAccount: name,
      })
      return {
        status: 201,
        body: { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', status: { token } },
      }
    },
  )
}

function installClassic(api: FakeKubeApi): void {
  const [service] = manifest('deploy/base/service.yaml')
  api.putObject('/api/v1/namespaces/irsa-system/services', service ?? {})
}

/** A healthy installation of the given mode; every doctor check passes until a test breaks something. */
export async function startFakeCluster(mode: 'classic' | 'knative'): Promise<FakeCluster> {
  const api = await startFakeKubeApi()
  const certs = createTestCertificates({ dnsNames: [serviceHostFor(mode)] })
  const key = await createSigningKey('cluster-key-1')
  const [configuration = {}] = manifest(
    mode === 'classic' ? 'deploy/base/webhook.yaml' : 'knative/base/webhook.yaml',
  )
  const webhooks = configuration['webhooks'] as Json[]
  const caBundle = Buffer.from(certs.caPem).toString('base64')
  const serviceAccounts: Json[] = []
  const cluster: FakeCluster = {
    api,
    pods: installPods(api),
    mode,
    certs,
    key,
    allowedVerbs: new Set(['get', 'list', 'watch']),
    webhookUp: true,
    webhookDownError: WEBHOOK_UNREACHABLE.refused,
    oidc: {
      issuer: ISSUER,
      jwksUri: `${ISSUER}/openid/v1/jwks`,
      keys: [key.publicJwk],
      tokenIssuer: ISSUER,
      up: true,
    },
    webhookConfiguration: {
      ...configuration,
      webhooks: webhooks.map((w) => ({
        ...w,
        clientConfig: { ...(w['clientConfig'] as Json), caBundle },
      })),
    },
    putWebhook(next) {
      Object.assign(cluster.webhookConfiguration, next)
      api.putObject(MWC, cluster.webhookConfiguration)
    },
    putServiceAccount(namespace, name, annotations) {
      const sa = {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name, namespace, annotations },
      }
      const index = serviceAccounts.findIndex((s) => {
        const metadata = s['metadata'] as Json
        return metadata['name'] === name && metadata['namespace'] === namespace
      })
      if (index >= 0) serviceAccounts.splice(index, 1)
      serviceAccounts.push(sa)
      api.setServiceAccount(sa)
    },
    async close() {
      await api.close()
      rmSync(certs.dir, { recursive: true, force: true })
    },
  }
  api.putObject(MWC, cluster.webhookConfiguration)
  if (mode === 'classic') installClassic(api)
  else installKnative(api)
  putEndpoints(cluster, true)
  putCertificateSecret(cluster, certs.certPem)
  putNamespaces(api)
  cluster.putServiceAccount('default', 'app', { 'api.vultr.com/role': ROLE })
  api.route('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', (req) =>
    sarAnswer(cluster, req),
  )
  api.route('POST', /^\/api\/v1\/namespaces\/[^/]+\/pods$/, (req) =>
    createPod(cluster, serviceAccounts, req),
  )
  routeOidc(cluster)
  return cluster
}

/** Runs `irsa-webhook <argv>` in this process; `files` are served instead of the disk (`-` is stdin). */
export async function runInProcess(argv: string[], files: Record<string, string> = {}) {
  let stdout = ''
  let stderr = ''
  const io = {
    out: (text: string) => {
      stdout += text
    },
    err: (text: string) => {
      stderr += text
    },
    readFile: (path: string) => files[path] ?? readFileSync(path, 'utf8'),
  }
  const code = await runCli(argv, io)
  return { code, stdout, stderr }
}

/**
 * Runs `node bin/irsa-webhook.ts <argv>` (or another `entry` under the repository, e.g. `dist/cli.js`) as a child
 * process (Node 24, like `npm run cli`); a non-zero exit is an answer, not an error.
 */
export function runChild(argv: string[], stdin = '', entry = 'bin/irsa-webhook.ts') {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [`${ROOT}${entry}`, ...argv],
      { cwd: ROOT, timeout: 30_000, env: { PATH: process.env['PATH'] ?? '', HOME: tmpdir() } },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') reject(error)
        else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr })
      },
    )
    child.stdin?.end(stdin)
  })
}
