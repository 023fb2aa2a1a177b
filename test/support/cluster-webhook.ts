/**
 * The webhook as it runs in production, registered with the real control plane (test/support/control-plane.ts):
 * the esbuild bundle started the way `npm start` starts it (HTTPS, a throwaway certificate for 127.0.0.1), the
 * identity of the shipped ServiceAccount (`irsa-system/irsa-webhook`, with the shipped RBAC from deploy/rbac and a
 * TokenRequest token mounted as a kubelet would), the env of a shipped container, and the shipped
 * MutatingWebhookConfiguration rendered from deploy/ with exactly three changes (`forTest`): its `service:` becomes
 * a `url:` on 127.0.0.1 with our CA, its name gets the test's suffix, and one namespaceSelector expression scopes
 * it to the test's namespaces, so webhooks of different tests sharing one control plane never see each other's pods.
 * @module
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import type { ControlPlane } from './control-plane.ts'
import { type Doc, get, parse, render } from './manifests.ts'
import { type ChildServer, poll, ROOT, spawnServer } from './process.ts'
import { createTestCertificates } from './tls.ts'

/** The namespace label that sends a namespace's pods to one test's webhook (its `scope`). */
export const SCOPE_LABEL = 'irsa-test/webhook'
const ROLE_FOR_PROBE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'

/** `npm start` as package.json says it: node options and the entry. */
export function startCommand(): { nodeArgs: string[]; entry: string } {
  const scripts = (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>
    }
  ).scripts
  const words = (scripts['start'] ?? '').split(/\s+/)
  if (words[0] !== 'node') throw new Error(`npm start is not a node command: ${scripts['start']}`)
  const entry = words.at(-1) ?? ''
  return { nodeArgs: words.slice(1, -1), entry }
}

/** Builds dist/ (scripts/build.ts) unless the bundles are there; the global setup builds once per run. */
export function ensureBundle(force = false): void {
  if (!force && existsSync(join(ROOT, 'dist/handler.js')) && existsSync(join(ROOT, 'dist/cli.js')))
    return
  execFileSync(process.execPath, ['scripts/build.ts'], { cwd: ROOT, stdio: 'inherit' })
}

export type Profile = 'default' | 'opt-in'

/** The shipped MutatingWebhookConfiguration: deploy/ rendered by kustomize, with the opt-in component if asked. */
export function shippedWebhookConfiguration(profile: Profile = 'default'): Doc {
  let dir = join(ROOT, 'deploy')
  let temporary: string | undefined
  if (profile === 'opt-in') {
    temporary = mkdtempSync(join(tmpdir(), 'irsa-kustomize-'))
    writeFileSync(
      join(temporary, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${relative(temporary, join(ROOT, 'deploy'))}`,
        'components:',
        `  - ${relative(temporary, join(ROOT, 'deploy/components/opt-in-label'))}`,
        '',
      ].join('\n'),
    )
    dir = temporary
  }
  try {
    const found = render(dir).filter((doc) => doc['kind'] === 'MutatingWebhookConfiguration')
    if (found.length !== 1) throw new Error(`expected one MutatingWebhookConfiguration in ${dir}`)
    return found[0] as Doc
  } finally {
    if (temporary !== undefined) rmSync(temporary, { recursive: true, force: true })
  }
}

/**
 * The shipped configuration made registrable on a control plane with no Service to route to: `service:` → `url:`
 * (+ `caBundle`), the name suffixed with `scope`, and namespaces limited to those labelled `SCOPE_LABEL=scope`.
 * Nothing else changes (the admission test checks the difference).
 */
export function forTest(shipped: Doc, scope: string, url: string, caPem: string): Doc {
  const copy = structuredClone(shipped) as Doc & {
    metadata: { name: string }
    webhooks: Doc[]
  }
  copy.metadata.name = `${copy.metadata.name}-${scope}`
  for (const hook of copy.webhooks) {
    const path = get(hook, 'clientConfig.service.path') ?? ''
    hook['clientConfig'] = {
      url: `${url}${String(path)}`,
      caBundle: Buffer.from(caPem).toString('base64'),
    }
    const selector = (hook['namespaceSelector'] ?? {}) as { matchExpressions?: Doc[] }
    selector.matchExpressions = [
      ...(selector.matchExpressions ?? []),
      { key: SCOPE_LABEL, operator: 'In', values: [scope] },
    ]
    hook['namespaceSelector'] = selector
  }
  return copy
}

export type Shape = 'knative' | 'classic'

/** The env of the shipped webhook container (Knative Service or classic Deployment), as name → value. */
export function shippedEnv(shape: Shape): Record<string, string> {
  const file = shape === 'knative' ? 'knative/base/service.yaml' : 'deploy/base/deployment.yaml'
  const doc = parse(readFileSync(join(ROOT, file), 'utf8'))[0]
  const path =
    shape === 'knative' ? 'spec.template.spec.containers' : 'spec.template.spec.containers'
  const containers = (get(doc, path) ?? []) as { env?: { name: string; value?: string }[] }[]
  return Object.fromEntries(
    (containers[0]?.env ?? [])
      .filter((e) => e.value !== undefined)
      .map((e) => [e.name, e.value as string]),
  )
}

/** Applies the shipped namespace, ServiceAccount and RBAC (deploy/rbac); idempotent. */
export async function applyShippedRbac(cp: ControlPlane): Promise<void> {
  await cp.kubectlOk(['apply', '-k', join(ROOT, 'deploy/rbac')])
}

export interface ClusterWebhookOptions {
  /** Suffix of the configuration's name and the value of SCOPE_LABEL its namespaces carry. */
  readonly scope: string
  readonly profile?: Profile
  /** Whose shipped container env to run with (default knative: SA_LOOKUP_MODE=get). */
  readonly shape?: Shape
  /** Extra webhook env (e.g. DEFAULT_REGION), on top of the shipped env. */
  readonly env?: Readonly<Record<string, string>>
}

export interface ClusterWebhook {
  readonly scope: string
  /** Labels a namespace needs to be served by this webhook. */
  readonly namespaceLabels: Readonly<Record<string, string>>
  /** The registered MutatingWebhookConfiguration (as applied). */
  readonly configuration: Doc
  readonly shipped: Doc
  readonly server: ChildServer
  /** Stops the process; the registration stays (so its failurePolicy applies). */
  stopServer(): Promise<void>
  /** Removes the registration and stops the process. */
  close(): Promise<void>
}

/**
 * Starts the webhook from dist/ as `npm start` does and registers it; resolves once a dry-run pod in a probe
 * namespace comes back mutated (the API server has picked up the registration).
 */
export async function startClusterWebhook(
  cp: ControlPlane,
  options: ClusterWebhookOptions,
): Promise<ClusterWebhook> {
  ensureBundle()
  await applyShippedRbac(cp)
  const mount = await cp.serviceAccountMount('irsa-system', 'irsa-webhook')
  const certs = createTestCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })
  const apiPort = new URL(cp.server).port
  const { nodeArgs, entry } = startCommand()
  const server = await spawnServer({
    entry,
    nodeArgs,
    env: {
      ...shippedEnv(options.shape ?? 'knative'),
      HOST: '127.0.0.1',
      PORT: '0',
      TLS_CERT_PATH: certs.certPath,
      TLS_KEY_PATH: certs.keyPath,
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: apiPort,
      KUBE_SERVICEACCOUNT_DIR: mount,
      ...options.env,
    },
  })
  const shipped = shippedWebhookConfiguration(options.profile)
  const configuration = forTest(
    shipped,
    options.scope,
    `https://127.0.0.1:${server.port}`,
    certs.caPem,
  )
  const name = String(get(configuration, 'metadata.name'))
  const close = async () => {
    await cp.kubectl(['delete', 'mutatingwebhookconfiguration', name, '--ignore-not-found'])
    await server.stop()
    rmSync(certs.dir, { recursive: true, force: true })
  }
  try {
    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(configuration) })
    const namespaceLabels = { [SCOPE_LABEL]: options.scope }
    await waitUntilServing(cp, namespaceLabels, options.profile ?? 'default')
    return {
      scope: options.scope,
      namespaceLabels,
      configuration,
      shipped,
      server,
      stopServer: () => server.stop(),
      close,
    }
  } catch (error) {
    await close()
    throw error
  }
}

/** Polls a dry-run pod in a probe namespace until the webhook's env shows up in it. */
async function waitUntilServing(
  cp: ControlPlane,
  namespaceLabels: Record<string, string>,
  profile: Profile,
): Promise<void> {
  const namespace = await cp.namespace('probe', namespaceLabels)
  const serviceAccount = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'probe', namespace, annotations: { 'api.vultr.com/role': ROLE_FOR_PROBE } },
  }
  await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(serviceAccount) })
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'probe',
      namespace,
      labels: profile === 'opt-in' ? { 'api.vultr.com/irsa': 'true' } : {},
    },
    spec: { serviceAccountName: 'probe', containers: [{ name: 'app', image: 'busybox' }] },
  }
  await poll(
    async () => {
      const result = await cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
        input: JSON.stringify(pod),
      })
      return result.code === 0 && result.stdout.includes('AWS_ROLE_ARN') ? true : undefined
    },
    'the API server to call the newly registered webhook',
    30_000,
  )
}
