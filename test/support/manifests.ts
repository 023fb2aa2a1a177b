/**
 * What the shipped manifests must hold, shared by the kustomize trees (test/unit/manifests.test.ts) and the release
 * bundles (test/unit/release-manifests.test.ts): parsing, offline rendering (`kubectl kustomize`) and the invariants
 * the operator relies on, checked against the app's own names (function/names.ts, function/config.ts), the
 * Dockerfile and generate-certs.sh.
 * @module
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { configSchema, listenPort, loadConfig, serveMode } from '../../function/config.ts'
import { LABELS, ROUTES } from '../../function/names.ts'
import { parseYamlDocuments } from '../../function/yaml.ts'
import { renderKustomization } from '../../scripts/release-manifests.ts'
import { ROOT } from './process.ts'

export type Doc = Record<string, unknown>
type Labels = Record<string, string>
type Selector = {
  matchLabels?: Labels
  matchExpressions?: { key: string; operator: string; values?: string[] }[]
}

/** Reads a value by a dotted path; `[]` never appears, numeric keys index arrays. */
export function get(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (node as Doc | undefined)?.[key], value)
}
export const list = <T = Doc>(value: unknown, path: string): T[] =>
  (get(value, path) as T[] | undefined) ?? []
export const one = (docs: Doc[], kind: string, name?: string, apiVersion?: string): Doc => {
  const found = docs.filter(
    (doc) =>
      doc['kind'] === kind &&
      (name === undefined || get(doc, 'metadata.name') === name) &&
      (apiVersion === undefined || doc['apiVersion'] === apiVersion),
  )
  assert.equal(found.length, 1, `exactly one ${kind} ${name ?? ''}`)
  return found[0] as Doc
}

/** Kubernetes label-selector semantics (matchLabels AND matchExpressions). */
export function selects(selector: Selector, labels: Labels): boolean {
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(
    ([key, value]) => labels[key] === value,
  )
  return (
    byLabel &&
    (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
      const has = key in labels
      if (operator === 'In') return has && values.includes(labels[key] ?? '')
      if (operator === 'NotIn') return !has || !values.includes(labels[key] ?? '')
      if (operator === 'Exists') return has
      if (operator === 'DoesNotExist') return !has
      throw new Error(`unknown operator ${operator}`)
    })
  )
}

export function yamlFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.yaml') || file.endsWith('.yml'))
    .map((file) => join(dir, file))
}
export const parse = (text: string): Doc[] =>
  (parseYamlDocuments(text) as (Doc | null)[]).filter((doc) => doc !== null)
export const parseFiles = (...files: string[]): Doc[] =>
  files.flatMap((f) => parse(readFileSync(join(ROOT, f), 'utf8')))

const hasKubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 30_000 })
    return true
  } catch {
    return false
  }
})()
export const noKubectl = hasKubectl
  ? false
  : 'kubectl is not on PATH: kustomize output not rendered'
export const render = (dir: string): Doc[] =>
  parse(
    execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000, cwd: ROOT }),
  )

const SYSTEM_NAMESPACES = [
  'kube-system',
  'kube-public',
  'kube-node-lease',
  'knative-serving',
  'cert-manager',
]
const OPT_OUT: Labels = { 'irsa-webhook': 'disabled' }
const nsLabels = (name: string, extra: Labels = {}): Labels => ({
  'kubernetes.io/metadata.name': name,
  ...extra,
})

export function webhookOf(docs: Doc[]): Doc {
  const mwc = one(docs, 'MutatingWebhookConfiguration', 'irsa-webhook')
  const hooks = list(mwc, 'webhooks')
  assert.deepEqual(
    hooks.map((hook) => hook['name']),
    ['irsa.vultr.com'],
  )
  return hooks[0] as Doc
}

/** The opt-in pod label profile (deploy/components/opt-in-label): only labelled pods are sent, with failurePolicy Fail. */
const OPT_IN: Labels = { [LABELS.optIn]: 'true' }

function checkWebhook(
  hook: Doc,
  own: { namespace: string; podLabels: Labels; gateway: string },
  optIn = false,
): void {
  assert.deepEqual(get(hook, 'rules'), [
    {
      apiGroups: [''],
      apiVersions: ['v1'],
      operations: ['CREATE'],
      resources: ['pods'],
      scope: 'Namespaced',
    },
  ])
  assert.deepEqual(get(hook, 'admissionReviewVersions'), ['v1'])
  assert.equal(get(hook, 'sideEffects'), 'None')
  assert.equal(get(hook, 'reinvocationPolicy'), 'IfNeeded')
  const timeout = get(hook, 'timeoutSeconds') as number
  assert.ok(timeout >= 1 && timeout <= 30, 'timeoutSeconds within the API limit')
  const path = String(get(hook, 'clientConfig.service.path'))
  assert.ok(
    path === ROUTES.mutate || path.startsWith(`${ROUTES.mutate}/`),
    `${path} is a mutate route`,
  )
  assert.equal(get(hook, 'clientConfig.service.port'), 443)
  const namespaces = get(hook, 'namespaceSelector') as Selector
  for (const ns of [...SYSTEM_NAMESPACES, own.namespace, own.gateway]) {
    assert.equal(selects(namespaces, nsLabels(ns)), false, `namespace ${ns} is excluded by name`)
  }
  assert.equal(selects(namespaces, nsLabels('team-a', OPT_OUT)), false, 'opt-out namespace label')
  assert.equal(selects(namespaces, nsLabels('default')), true, 'ordinary namespaces are served')
  const objects = get(hook, 'objectSelector') as Selector
  assert.equal(selects(objects, own.podLabels), false, "the webhook's own pods are excluded")
  assert.equal(
    selects(objects, { ...own.podLabels, ...OPT_IN }),
    false,
    "the webhook's own pods are excluded, even labelled",
  )
  assert.equal(selects(objects, { app: 'web', ...OPT_IN, ...OPT_OUT }), false, 'opt-out wins')
  assert.equal(selects(objects, { app: 'web', ...OPT_OUT }), false, 'opt-out pod label')
  assert.equal(selects(objects, { app: 'web', ...OPT_IN }), true, 'labelled pods are served')
  assert.equal(selects(objects, { app: 'web' }), !optIn, 'unlabelled pods: served unless opt-in')
  assert.equal(
    selects(objects, { app: 'web', [LABELS.optIn]: 'false' }),
    !optIn,
    'only "true" opts in',
  )
  if (optIn) assert.equal(get(hook, 'failurePolicy'), 'Fail', 'opt-in pods never go without')
}

export type Container = Doc & { env?: { name: string; value?: string }[] }

function checkContainer(container: Container, podSecurity: Doc = {}): void {
  const sc = (key: string): unknown =>
    get(container, `securityContext.${key}`) ?? get(podSecurity, key)
  assert.equal(sc('runAsNonRoot'), true)
  assert.equal(sc('runAsUser'), 65532)
  assert.equal(sc('runAsGroup'), 65532)
  assert.equal(get(container, 'securityContext.readOnlyRootFilesystem'), true)
  assert.equal(get(container, 'securityContext.allowPrivilegeEscalation'), false)
  assert.notEqual(get(container, 'securityContext.privileged'), true)
  assert.deepEqual(get(container, 'securityContext.capabilities'), { drop: ['ALL'] })
  assert.equal(sc('seccompProfile.type'), 'RuntimeDefault')
  assert.ok(
    get(container, 'resources.requests.memory') && get(container, 'resources.limits.memory'),
  )
  const image = String(container['image'])
  assert.doesNotMatch(image, /:latest$/, 'no latest tag')
  const known = Object.keys(configSchema.unwrap().shape)
  for (const { name } of container.env ?? [])
    assert.ok(known.includes(name), `${name} is read by the app`)
}

const envOf = (container: Container, extra: Labels = {}): Labels =>
  Object.fromEntries([
    ...(container.env ?? []).map((e) => [e.name, e.value ?? 'x'.repeat(24)]),
    ...Object.entries(extra),
  ])

const WEBHOOK_SA = { kind: 'ServiceAccount', name: 'irsa-webhook', namespace: 'irsa-system' }

/** The roles bound to `subject` (any binding kind). */
function rolesOf(docs: Doc[], subject: Doc): Doc[] {
  const names = docs
    .filter((doc) => ['ClusterRoleBinding', 'RoleBinding'].includes(String(doc['kind'])))
    .filter((binding) => list(binding, 'subjects').some((s) => isDeepStrictEqual(s, subject)))
    .map((binding) => [get(binding, 'roleRef.kind'), get(binding, 'roleRef.name')].join('/'))
  return docs.filter((doc) => names.includes(`${doc['kind']}/${get(doc, 'metadata.name')}`))
}

function checkRbac(docs: Doc[], lookupMode: string): void {
  const roles = rolesOf(docs, WEBHOOK_SA)
  assert.equal(roles.length, 1, 'one role for the webhook, shared by both shapes')
  const [rule, ...more] = list(roles[0], 'rules')
  assert.equal(more.length, 0)
  assert.deepEqual([get(rule, 'apiGroups'), get(rule, 'resources')], [[''], ['serviceaccounts']])
  const verbs = list<string>(rule, 'verbs')
  assert.ok(
    verbs.every((verb) => ['get', 'list', 'watch'].includes(verb)),
    'read-only verbs',
  )
  assert.ok(
    verbs.includes('get') &&
      (lookupMode === 'get' || (verbs.includes('list') && verbs.includes('watch'))),
  )
  const binding = one(docs, 'ClusterRoleBinding', 'irsa-webhook-sa-reader')
  assert.equal(get(binding, 'roleRef.name'), get(roles[0], 'metadata.name'))
  assert.deepEqual(get(binding, 'subjects'), [WEBHOOK_SA])
  one(docs, 'ServiceAccount', 'irsa-webhook')
}

export function scriptDefault(mode: string, variable: string): string {
  const script = readFileSync(join(ROOT, 'generate-certs.sh'), 'utf8')
  const match = new RegExp(`${mode}\\) .*${variable}=\\$\\{${variable}:-([\\w.-]+)\\}`).exec(script)
  assert.ok(match?.[1], `generate-certs.sh has a ${mode} default for ${variable}`)
  return match[1]
}

export function checkClassic(docs: Doc[], optIn = false): void {
  const deployment = one(docs, 'Deployment', 'irsa-webhook')
  const pod = get(deployment, 'spec.template') as Doc
  const podLabels = get(pod, 'metadata.labels') as Labels
  const [container] = list<Container>(pod, 'spec.containers')
  assert.ok(container)
  checkContainer(container, get(pod, 'spec.securityContext') as Doc)
  assert.ok((get(deployment, 'spec.replicas') as number) >= 2)
  assert.ok(selects(get(deployment, 'spec.selector') as Selector, podLabels))
  const spread = list(pod, 'spec.topologySpreadConstraints').map((c) => c['topologyKey'])
  assert.ok(spread.includes('kubernetes.io/hostname'), 'replicas spread over nodes')
  const pdb = one(docs, 'PodDisruptionBudget', 'irsa-webhook')
  assert.ok(selects(get(pdb, 'spec.selector') as Selector, podLabels))
  assert.equal(get(pdb, 'spec.minAvailable'), 1)
  const config = loadConfig(envOf(container))
  assert.ok(config.ok, 'the Deployment env is a valid app config')
  assert.equal(serveMode(config.value), 'https')
  const drain = config.value.SHUTDOWN_DELAY_MS + config.value.SHUTDOWN_TIMEOUT_MS
  assert.ok(
    drain < Number(get(pod, 'spec.terminationGracePeriodSeconds')) * 1000,
    'drains before SIGKILL',
  )
  const port = listenPort(config.value, 'https')
  const ports = list(container, 'ports')
  assert.deepEqual(
    ports.map((p) => p['containerPort']),
    [port],
  )
  for (const probe of ['readinessProbe', 'livenessProbe']) {
    assert.ok(
      Object.values(ROUTES).includes(get(container, `${probe}.httpGet.path`) as never),
      `${probe} path`,
    )
    assert.equal(get(container, `${probe}.httpGet.scheme`), 'HTTPS')
    assert.ok(
      [port, get(ports[0], 'name')].includes(get(container, `${probe}.httpGet.port`)),
      `${probe} port`,
    )
  }
  const mount = list(container, 'volumeMounts').find(
    (m) => m['mountPath'] === dirname(config.value.TLS_CERT_PATH),
  )
  assert.ok(
    mount && mount['subPath'] === undefined,
    'certificates mounted as a directory, without subPath',
  )
  assert.equal(dirname(config.value.TLS_KEY_PATH), mount['mountPath'])
  const volume = list(pod, 'spec.volumes').find((v) => v['name'] === mount['name'])
  assert.equal(get(volume, 'secret.secretName'), scriptDefault('classic', 'SECRET'))
  assert.equal(get(pod, 'spec.serviceAccountName'), 'irsa-webhook')
  const service = one(docs, 'Service', 'irsa-webhook')
  assert.ok(selects({ matchLabels: get(service, 'spec.selector') as Labels }, podLabels))
  assert.deepEqual(
    list(service, 'spec.ports').map((p) => [p['port'], p['targetPort']]),
    [[443, 'https']],
  )
  const hook = webhookOf(docs)
  assert.equal(get(hook, 'failurePolicy'), 'Fail')
  assert.deepEqual(get(hook, 'clientConfig.service.name'), get(service, 'metadata.name'))
  assert.deepEqual(get(hook, 'clientConfig.service.namespace'), get(service, 'metadata.namespace'))
  checkWebhook(hook, { namespace: 'irsa-system', podLabels, gateway: 'kourier-system' }, optIn)
  checkRbac(docs, config.value.SA_LOOKUP_MODE)
}

export const labelsAt = (doc: unknown, path: string): Labels =>
  (get(doc, path) as Labels | undefined) ?? {}

export function checkKnative(
  docs: Doc[],
  profile: 'scale-to-zero' | 'production',
  optIn = false,
): string {
  const ksvc = one(docs, 'Service', 'irsa-webhook', 'serving.knative.dev/v1')
  assert.equal(
    labelsAt(ksvc, 'metadata.labels')['networking.knative.dev/visibility'],
    'cluster-local',
  )
  const template = get(ksvc, 'spec.template') as Doc
  const scale = (key: string) =>
    labelsAt(template, 'metadata.annotations')[`autoscaling.knative.dev/${key}`]
  assert.equal(scale('min-scale'), profile === 'production' ? '1' : '0')
  assert.equal(scale('initial-scale'), '1')
  for (const key of ['max-scale', 'target', 'scale-to-zero-pod-retention-period'])
    assert.ok(scale(key), key)
  assert.equal(get(template, 'spec.containerConcurrency'), 0)
  assert.ok((get(template, 'spec.timeoutSeconds') as number) >= 35, 'outlives the 30 s drain')
  assert.equal(get(template, 'spec.serviceAccountName'), 'irsa-webhook')
  const [container] = list<Container>(template, 'spec.containers')
  assert.ok(container)
  checkContainer(container)
  const reserved = (container.env ?? []).filter((e) => ['PORT', 'K_SERVICE'].includes(e.name))
  assert.deepEqual(reserved, [], 'PORT and K_SERVICE are set by Knative')
  const config = loadConfig(envOf(container, { K_SERVICE: 'irsa-webhook' }))
  assert.ok(config.ok, 'the ksvc env is a valid app config')
  assert.equal(config.value.SA_LOOKUP_MODE, 'get', 'no informer LIST on every cold start')
  const grace = Number(get(template, 'spec.timeoutSeconds')) * 1000 // Knative's terminationGracePeriod
  assert.ok(
    config.value.SHUTDOWN_DELAY_MS + config.value.SHUTDOWN_TIMEOUT_MS < grace,
    'exits before SIGKILL',
  )
  const port = listenPort(config.value, serveMode(config.value))
  assert.deepEqual(get(container, 'ports'), [{ name: 'http1', containerPort: port }])
  assert.equal(get(container, 'readinessProbe.httpGet.path'), ROUTES.readyz)
  assert.ok([undefined, port].includes(get(container, 'readinessProbe.httpGet.port') as never))
  const alias = one(docs, 'Service', 'irsa-webhook', 'v1')
  const gateway = String(get(alias, 'metadata.namespace'))
  assert.deepEqual(get(alias, 'spec.selector'), { app: '3scale-kourier-gateway' })
  assert.deepEqual(
    list(alias, 'spec.ports').map((p) => [p['port'], p['targetPort']]),
    [[443, 8443]],
  )
  const host = `${get(alias, 'metadata.name')}.${gateway}.svc`
  const mapping = one(docs, 'DomainMapping', host)
  assert.equal(get(mapping, 'metadata.namespace'), get(ksvc, 'metadata.namespace'))
  assert.deepEqual(get(mapping, 'spec.ref'), {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    name: 'irsa-webhook',
  })
  assert.equal(get(mapping, 'spec.tls.secretName'), scriptDefault('knative', 'SECRET'))
  assert.equal(
    get(one(docs, 'ClusterDomainClaim', host), 'spec.namespace'),
    get(mapping, 'metadata.namespace'),
  )
  const hook = webhookOf(docs)
  assert.equal(get(hook, 'clientConfig.service.name'), get(alias, 'metadata.name'))
  assert.equal(get(hook, 'clientConfig.service.namespace'), gateway)
  assert.equal(get(hook, 'timeoutSeconds'), 30)
  assert.equal(get(hook, 'failurePolicy'), profile === 'production' || optIn ? 'Fail' : 'Ignore')
  assert.ok(
    get(hook, 'failurePolicy') === 'Ignore' ||
      Number(scale('min-scale')) >= 1 ||
      !selects(get(hook, 'objectSelector') as Selector, { app: 'web' }),
    'Fail only with a warm pod, or for the pods that opted in',
  )
  const podLabels = {
    ...labelsAt(template, 'metadata.labels'),
    'serving.knative.dev/service': 'irsa-webhook',
  }
  checkWebhook(hook, { namespace: 'irsa-system', podLabels, gateway }, optIn)
  checkRbac(docs, 'get')
  return gateway
}

/** The audit's ClusterRole, rule by rule: what `irsa-webhook audit --heal --events` calls, nothing more. */
const AUDIT_RULES = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
  { apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] },
  { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list'] },
  { apiGroups: [''], resources: ['namespaces'], verbs: ['list'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  {
    apiGroups: ['admissionregistration.k8s.io'],
    resources: ['mutatingwebhookconfigurations'],
    resourceNames: ['irsa-webhook'],
    verbs: ['get'],
  },
  { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['get'] },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get'] },
]
const AUDIT_SA = { kind: 'ServiceAccount', name: 'irsa-webhook-audit', namespace: 'irsa-system' }
const FIVE_MINUTES = 300

/** The webhook's container, in the Deployment (classic) or the Knative Service. */
export function webhookContainer(docs: Doc[]): Container {
  const workloads = docs.filter(
    (doc) =>
      (doc['kind'] === 'Deployment' || doc['apiVersion'] === 'serving.knative.dev/v1') &&
      get(doc, 'metadata.name') === 'irsa-webhook',
  )
  assert.equal(workloads.length, 1, 'one webhook workload')
  const [container] = list<Container>(workloads[0], 'spec.template.spec.containers')
  assert.ok(container)
  return container
}

/** Every label selector of the webhook's own objects (Services, the PDB, the Deployment, its spread constraints). */
function webhookSelectors(docs: Doc[]): Selector[] {
  return docs.flatMap((doc): Selector[] => {
    if (doc['kind'] === 'Service' && doc['apiVersion'] === 'v1')
      return [{ matchLabels: get(doc, 'spec.selector') as Labels }]
    if (['Deployment', 'PodDisruptionBudget'].includes(String(doc['kind'])))
      return [
        get(doc, 'spec.selector') as Selector,
        ...list(doc, 'spec.template.spec.topologySpreadConstraints').map(
          (c) => c['labelSelector'] as Selector,
        ),
      ]
    return []
  })
}

/** The heal CronJob (deploy/components/audit-cronjob): schedule, bounds, hardening, image, RBAC of its own. */
export function checkAudit(docs: Doc[]): void {
  const cron = one(docs, 'CronJob', 'irsa-webhook-audit')
  assert.equal(get(cron, 'apiVersion'), 'batch/v1')
  assert.equal(get(cron, 'metadata.namespace'), 'irsa-system')
  assert.equal(get(cron, 'spec.schedule'), '*/5 * * * *')
  assert.equal(get(cron, 'spec.concurrencyPolicy'), 'Forbid', 'never two audits at once')
  const starting = get(cron, 'spec.startingDeadlineSeconds') as number
  assert.ok(starting > 0 && starting < FIVE_MINUTES, 'a late run is skipped before the next is due')
  for (const limit of ['successfulJobsHistoryLimit', 'failedJobsHistoryLimit']) {
    const kept = get(cron, `spec.${limit}`) as number
    assert.ok(kept >= 1 && kept <= 3, `${limit} keeps a few Jobs, not 288 a day`)
  }
  const job = get(cron, 'spec.jobTemplate.spec') as Doc
  assert.equal(get(job, 'backoffLimit'), 0, 'the next scheduled run is the retry')
  const deadline = get(job, 'activeDeadlineSeconds') as number
  assert.ok(deadline > 0 && deadline < FIVE_MINUTES, 'a run ends before the next is due')
  assert.ok((get(job, 'ttlSecondsAfterFinished') as number) > 0)
  const pod = get(job, 'template') as Doc
  assert.equal(get(pod, 'spec.restartPolicy'), 'Never')
  assert.equal(get(pod, 'spec.serviceAccountName'), AUDIT_SA.name)
  assert.equal(get(pod, 'spec.automountServiceAccountToken'), true)
  const [container, ...others] = list<Container>(pod, 'spec.containers')
  assert.ok(container && others.length === 0)
  checkContainer(container, get(pod, 'spec.securityContext') as Doc)
  assert.equal(container['image'], webhookContainer(docs)['image'], "the webhook's own image")
  assert.deepEqual(container['command'], [
    'node',
    '--max-semi-space-size=8',
    '--optimize-for-size',
    'dist/cli.js',
    'audit',
    '--heal',
    '--events',
    '--job',
    '-o',
    'json',
  ])
  const podLabels = labelsAt(pod, 'metadata.labels')
  for (const selector of webhookSelectors(docs))
    assert.equal(selects(selector, podLabels), false, 'no webhook selector picks the audit pods')
  const hook = webhookOf(docs)
  const namespace = nsLabels(String(get(cron, 'metadata.namespace')))
  assert.equal(selects(get(hook, 'namespaceSelector') as Selector, namespace), false)
  // Its own identity, with exactly the rules the audit needs; the webhook keeps read-only ServiceAccount access.
  one(docs, 'ServiceAccount', AUDIT_SA.name)
  const roles = rolesOf(docs, AUDIT_SA)
  assert.deepEqual(
    roles.map((role) => [role['kind'], get(role, 'metadata.name')]),
    [['ClusterRole', 'irsa-webhook-audit']],
  )
  assert.deepEqual(get(roles[0], 'rules'), AUDIT_RULES)
  const binding = one(docs, 'ClusterRoleBinding', 'irsa-webhook-audit')
  assert.deepEqual(get(binding, 'subjects'), [AUDIT_SA], 'bound to the audit alone')
}

const manifests = (dir: string) =>
  yamlFiles(dir).filter((file) => !file.endsWith('kustomization.yaml'))
export const classicFiles = () =>
  parseFiles(...manifests('deploy/base'), ...manifests('deploy/rbac'))
export const knativeFiles = () =>
  parseFiles(...manifests('knative/base'), ...manifests('deploy/rbac'))

export function scriptGateway(): string {
  const match = /GATEWAY_NAMESPACE=([\w-]+)/.exec(
    readFileSync(join(ROOT, 'generate-certs.sh'), 'utf8'),
  )
  return match?.[1] ?? ''
}

/** Renders `kustomization` in a scratch copy of deploy/ and knative/ (the release script's own renderer). */
export const renderWith = (kustomization: string, files: Record<string, string> = {}): Doc[] =>
  parse(renderKustomization(kustomization, files))

export const rbacOf = (docs: Doc[]) =>
  docs.filter((doc) =>
    ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(
      String(doc['kind']),
    ),
  )

const CERTS_SA = { kind: 'ServiceAccount', name: 'irsa-webhook-certs', namespace: 'irsa-system' }

/** The Secret the webhook reads: the classic Deployment's volume, or the DomainMapping's TLS Secret (Knative). */
export function servingSecretOf(docs: Doc[]): string {
  const mapping = docs.find((doc) => doc['kind'] === 'DomainMapping')
  if (mapping !== undefined) return String(get(mapping, 'spec.tls.secretName'))
  const volumes = list(one(docs, 'Deployment', 'irsa-webhook'), 'spec.template.spec.volumes')
  return String(
    get(
      volumes.find((v) => v['name'] === 'certs'),
      'secret.secretName',
    ),
  )
}

/**
 * The certificate Job and renew CronJob (deploy/components/certs): one pod spec for both, `irsa-webhook certs --job`
 * in the webhook's image, hardened like the webhook, and RBAC of their own: Secrets in irsa-system only (get and
 * update by name, create), Events, and get/patch of the one MutatingWebhookConfiguration by name.
 */
export function checkCerts(
  docs: Doc[],
  secretNames: { ca: string; serving: readonly string[] },
): void {
  const job = one(docs, 'Job', 'irsa-webhook-certs')
  const cron = one(docs, 'CronJob', 'irsa-webhook-certs-renew')
  for (const doc of [job, cron]) {
    assert.equal(get(doc, 'apiVersion'), 'batch/v1')
    assert.equal(get(doc, 'metadata.namespace'), 'irsa-system')
  }
  assert.equal(get(cron, 'spec.concurrencyPolicy'), 'Forbid', 'never two renewals at once')
  const jobSpec = get(job, 'spec') as Doc
  const cronSpec = get(cron, 'spec.jobTemplate.spec') as Doc
  assert.deepEqual(get(cronSpec, 'template'), get(jobSpec, 'template'), 'one pod spec for both')
  for (const spec of [jobSpec, cronSpec]) {
    assert.ok(
      (get(spec, 'backoffLimit') as number) > 0,
      'a run that could not do its work is retried',
    )
    assert.ok((get(spec, 'ttlSecondsAfterFinished') as number) > 0)
    assert.ok((get(spec, 'activeDeadlineSeconds') as number) > 0)
  }
  const pod = get(jobSpec, 'template') as Doc
  assert.equal(get(pod, 'spec.restartPolicy'), 'Never')
  assert.equal(get(pod, 'spec.serviceAccountName'), CERTS_SA.name)
  const [container, ...others] = list<Container>(pod, 'spec.containers')
  assert.ok(container && others.length === 0)
  checkContainer(container, get(pod, 'spec.securityContext') as Doc)
  assert.equal(container['image'], webhookContainer(docs)['image'], "the webhook's own image")
  assert.deepEqual(container['command'], [
    'node',
    '--max-semi-space-size=8',
    '--optimize-for-size',
    'dist/cli.js',
    'certs',
    '--job',
  ])
  const podLabels = labelsAt(pod, 'metadata.labels')
  for (const selector of webhookSelectors(docs))
    assert.equal(selects(selector, podLabels), false, 'no webhook selector picks the certs pods')
  // Never sent to the webhook it makes the certificate for (it must run before that webhook can answer).
  const namespace = nsLabels(String(get(job, 'metadata.namespace')))
  assert.equal(selects(get(webhookOf(docs), 'namespaceSelector') as Selector, namespace), false)
  one(docs, 'ServiceAccount', CERTS_SA.name)
  const roles = rolesOf(docs, CERTS_SA)
  assert.deepEqual(
    roles.map((role) => [
      role['kind'],
      get(role, 'metadata.namespace'),
      get(role, 'metadata.name'),
    ]),
    [
      ['Role', 'irsa-system', 'irsa-webhook-certs'],
      ['ClusterRole', undefined, 'irsa-webhook-certs'],
    ],
  )
  const mwc = get(one(docs, 'MutatingWebhookConfiguration'), 'metadata.name')
  assert.deepEqual(get(roles[0], 'rules'), [
    {
      apiGroups: [''],
      resources: ['secrets'],
      resourceNames: [secretNames.ca, ...secretNames.serving],
      verbs: ['get', 'update'],
    },
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ])
  assert.deepEqual(get(roles[1], 'rules'), [
    {
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['mutatingwebhookconfigurations'],
      resourceNames: [mwc],
      verbs: ['get', 'patch'],
    },
  ])
  assert.ok(secretNames.serving.includes(servingSecretOf(docs)), 'the Secret the webhook reads')
  for (const kind of ['RoleBinding', 'ClusterRoleBinding'])
    assert.deepEqual(get(one(docs, kind, 'irsa-webhook-certs'), 'subjects'), [CERTS_SA])
}
