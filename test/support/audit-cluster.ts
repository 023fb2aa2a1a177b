/**
 * Stored pods as the API server keeps them, for `irsa-webhook audit` tests and its benchmark: what a controller
 * creates, plus what admission and the kubelet add (the `kube-api-access-*` token volume and its mount, nodeName,
 * status). A pod "admitted by the webhook" is the same pod with the REAL webhook's patch applied
 * (test/support/webhook.ts `admit`).
 * @module
 */
import { readFileSync } from 'node:fs'
import { parseYamlDocuments } from '../../function/yaml.ts'
import { type FakeKubeApi, startFakeKubeApi } from './fake-kube-api.ts'
import { type FakePods, installPods } from './fake-kube-api-pods.ts'
import { ROOT } from './process.ts'
import { admit } from './webhook.ts'

type Json = Record<string, unknown>

export const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
export const OTHER_ROLE = 'arn:aws:iam::1234567890:role/5d8a9bd2-1c2f-4a5e-8a41-000000000001'
export const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations'

export interface PodSpec {
  readonly namespace: string
  readonly name: string
  readonly serviceAccount?: string
  readonly owner?: { readonly kind: string; readonly name: string; readonly apiVersion?: string }
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
  readonly containers?: readonly Json[]
  readonly volumes?: readonly Json[]
  readonly phase?: string
}

const OWNER_API: Record<string, string> = {
  ReplicaSet: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  Job: 'batch/v1',
}

let serial = 0

/** The pod a controller (or a user) creates: what the webhook is sent. */
export function podManifest(spec: PodSpec): Json {
  serial += 1
  const owner = spec.owner
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: spec.name,
      namespace: spec.namespace,
      labels: spec.labels ?? {},
      ...(spec.annotations ? { annotations: spec.annotations } : {}),
      ...(owner
        ? {
            ownerReferences: [
              {
                apiVersion: owner.apiVersion ?? OWNER_API[owner.kind] ?? 'v1',
                kind: owner.kind,
                name: owner.name,
                uid: `00000000-0000-4000-8000-${String(serial).padStart(12, '0')}`,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          }
        : {}),
    },
    spec: {
      serviceAccountName: spec.serviceAccount ?? 'default',
      containers: spec.containers ?? [{ name: 'app', image: 'registry.example/app:1' }],
      ...(spec.volumes ? { volumes: spec.volumes } : {}),
    },
  }
}

/** What the API server stores after admission: the ServiceAccount token volume and mount, node and status. */
export function stored(pod: Json, phase = 'Running'): Json {
  const copy = structuredClone(pod) as { spec: Json; metadata: Json } & Json
  const spec = copy.spec
  const access = 'kube-api-access-x7k2p'
  spec['volumes'] = [
    ...((spec['volumes'] as Json[] | undefined) ?? []),
    {
      name: access,
      projected: {
        defaultMode: 420,
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        ],
      },
    },
  ]
  for (const container of spec['containers'] as Json[]) {
    container['volumeMounts'] = [
      ...((container['volumeMounts'] as Json[] | undefined) ?? []),
      { name: access, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
    ]
  }
  spec['nodeName'] = 'node-1'
  copy['status'] = { phase, podIP: '10.0.0.9' }
  return copy
}

export function serviceAccount(
  namespace: string,
  name: string,
  annotations: Record<string, string> = { 'api.vultr.com/role': ROLE },
): Json {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, annotations } }
}

/** The pod as the webhook mutated it at admission (the real app, the real patch). */
export async function admitted(pod: Json, serviceAccounts: readonly Json[]): Promise<Json> {
  const metadata = pod['metadata'] as Json
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'test',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: metadata['namespace'],
      object: pod,
    },
  }
  const result = await admit(review, serviceAccounts)
  if (result.status !== 200) throw new Error(`webhook answered ${result.status}`)
  return result.mutatedPod as Json
}

export interface AuditCluster {
  readonly api: FakeKubeApi
  readonly pods: FakePods
  /** ServiceAccounts stored so far (for `admitted`). */
  readonly serviceAccounts: Json[]
  putServiceAccount(sa: Json): void
  close(): Promise<void>
}

/** The shipped MutatingWebhookConfiguration (deploy/base/webhook.yaml). */
export function shippedConfiguration(): Json {
  const [configuration] = parseYamlDocuments(
    readFileSync(`${ROOT}deploy/base/webhook.yaml`, 'utf8'),
  ) as Json[]
  return configuration ?? {}
}

/** A fake API server with the shipped webhook configuration, namespaces and the pod routes. */
export async function startAuditCluster(namespaces: readonly string[]): Promise<AuditCluster> {
  const api = await startFakeKubeApi()
  const pods = installPods(api)
  api.putObject(MWC_PATH, shippedConfiguration())
  for (const name of namespaces) pods.putNamespace(name)
  const serviceAccounts: Json[] = []
  return {
    api,
    pods,
    serviceAccounts,
    putServiceAccount(sa) {
      serviceAccounts.push(sa)
      api.setServiceAccount(sa)
    },
    close: () => api.close(),
  }
}

/** The namespaces of `populateExample` (plus `quiet`, labelled irsa-webhook=disabled). */
export const EXAMPLE_NAMESPACES = ['shop', 'batch', 'apps', 'plain', 'kube-system', 'irsa-system']

/** Stores the pod as admitted while the webhook was down (unmutated) or by the webhook (mutated). */
async function put(
  cluster: AuditCluster,
  spec: PodSpec,
  how: 'unmutated' | 'mutated',
  phase?: string,
) {
  const manifest = podManifest(spec)
  const pod = how === 'mutated' ? await admitted(manifest, cluster.serviceAccounts) : manifest
  return cluster.pods.put(stored(pod, phase))
}

const rs = (name: string) => ({ kind: 'ReplicaSet', name })

/**
 * One pod per case the audit tells apart (test/integration/cli-audit.test.ts states what each must come to; the
 * examples in docs/cli.md are this cluster).
 */
export async function populateExample(cluster: AuditCluster): Promise<void> {
  cluster.putServiceAccount(serviceAccount('shop', 'web'))
  cluster.putServiceAccount(serviceAccount('shop', 'plain', {}))
  cluster.putServiceAccount(serviceAccount('shop', 'bad', { 'api.vultr.com/role': 'not-a-role' }))
  cluster.putServiceAccount(serviceAccount('batch', 'worker'))
  cluster.putServiceAccount(serviceAccount('apps', 'hello'))
  cluster.putServiceAccount(serviceAccount('kube-system', 'web'))
  cluster.putServiceAccount(serviceAccount('irsa-system', 'irsa-webhook'))
  cluster.pods.putNamespace('quiet', { 'irsa-webhook': 'disabled' })
  cluster.putServiceAccount(serviceAccount('quiet', 'web'))
  const hash = '6d4b9c7f5'
  const web = { serviceAccount: 'web', labels: { app: 'web', 'pod-template-hash': hash } }
  cluster.pods.putOwner('/apis/apps/v1/namespaces/shop/replicasets', {
    metadata: {
      name: `web-${hash}`,
      namespace: 'shop',
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true },
      ],
    },
  })
  await put(
    cluster,
    { namespace: 'shop', name: `web-${hash}-aaaaa`, owner: rs(`web-${hash}`), ...web },
    'unmutated',
  )
  await put(
    cluster,
    { namespace: 'shop', name: `web-${hash}-bbbbb`, owner: rs(`web-${hash}`), ...web },
    'unmutated',
  )
  await put(
    cluster,
    { namespace: 'shop', name: `web-${hash}-ccccc`, owner: rs(`web-${hash}`), ...web },
    'mutated',
  )
  // Its ReplicaSet is not readable (404): the Deployment is named by convention.
  await put(
    cluster,
    {
      namespace: 'shop',
      name: 'api-58c9d-qqqqq',
      serviceAccount: 'web',
      owner: rs('api-58c9d'),
      labels: { 'pod-template-hash': '58c9d' },
    },
    'unmutated',
  )
  await put(cluster, { namespace: 'shop', name: 'debug', serviceAccount: 'plain' }, 'unmutated')
  const sidecar = {
    serviceAccount: 'web',
    annotations: { 'api.vultr.com/skip-containers': 'proxy' },
    containers: [
      { name: 'app', image: 'registry.example/app:1' },
      { name: 'proxy', image: 'registry.example/proxy:1' },
    ],
  }
  await put(cluster, { namespace: 'shop', name: 'sidecar-ok', ...sidecar }, 'mutated')
  await put(cluster, { namespace: 'shop', name: 'sidecar-missing', ...sidecar }, 'unmutated')
  await put(cluster, { namespace: 'shop', name: 'bad-role', serviceAccount: 'bad' }, 'unmutated')
  await put(
    cluster,
    {
      namespace: 'shop',
      name: 'foreign-volume',
      serviceAccount: 'web',
      volumes: [{ name: 'vultr-irsa-token', emptyDir: {} }],
    },
    'unmutated',
  )
  // Admitted while shop/web had OTHER_ROLE; the annotation changed since.
  cluster.putServiceAccount(serviceAccount('shop', 'web', { 'api.vultr.com/role': OTHER_ROLE }))
  await put(
    cluster,
    {
      namespace: 'shop',
      name: 'db-0',
      serviceAccount: 'web',
      owner: { kind: 'StatefulSet', name: 'db' },
    },
    'mutated',
  )
  cluster.putServiceAccount(serviceAccount('shop', 'web'))
  await put(
    cluster,
    {
      namespace: 'shop',
      name: 'db-1',
      serviceAccount: 'web',
      owner: { kind: 'StatefulSet', name: 'db' },
    },
    'unmutated',
  )
  await put(
    cluster,
    {
      namespace: 'shop',
      name: 'agent-x1',
      serviceAccount: 'web',
      owner: { kind: 'DaemonSet', name: 'agent' },
    },
    'unmutated',
  )
  await put(
    cluster,
    { namespace: 'shop', name: 'finished', serviceAccount: 'web' },
    'unmutated',
    'Succeeded',
  )
  await put(
    cluster,
    {
      namespace: 'shop',
      name: 'static-node-1',
      serviceAccount: 'web',
      annotations: { 'kubernetes.io/config.mirror': 'abc' },
    },
    'unmutated',
  )
  await put(
    cluster,
    {
      namespace: 'shop',
      name: 'irsa-webhook-own',
      serviceAccount: 'web',
      labels: { 'app.kubernetes.io/name': 'irsa-webhook' },
    },
    'unmutated',
  )
  cluster.pods.putOwner('/apis/batch/v1/namespaces/batch/jobs', {
    metadata: {
      name: 'report-28930000',
      namespace: 'batch',
      ownerReferences: [
        { apiVersion: 'batch/v1', kind: 'CronJob', name: 'report', controller: true },
      ],
    },
  })
  cluster.pods.putOwner('/apis/batch/v1/namespaces/batch/jobs', {
    metadata: { name: 'migrate', namespace: 'batch' },
  })
  await put(
    cluster,
    {
      namespace: 'batch',
      name: 'report-28930000-zzzzz',
      serviceAccount: 'worker',
      owner: { kind: 'Job', name: 'report-28930000' },
    },
    'unmutated',
  )
  await put(
    cluster,
    {
      namespace: 'batch',
      name: 'migrate-yyyyy',
      serviceAccount: 'worker',
      owner: { kind: 'Job', name: 'migrate' },
    },
    'unmutated',
  )
  await put(
    cluster,
    {
      namespace: 'apps',
      name: 'hello-00001-deployment-5d9f7-abcde',
      serviceAccount: 'hello',
      owner: rs('hello-00001-deployment-5d9f7'),
      labels: {
        'serving.knative.dev/service': 'hello',
        'serving.knative.dev/revision': 'hello-00001',
      },
    },
    'unmutated',
  )
  await put(
    cluster,
    { namespace: 'kube-system', name: 'coredns-x', serviceAccount: 'web' },
    'unmutated',
  )
  await put(cluster, { namespace: 'quiet', name: 'quiet-x', serviceAccount: 'web' }, 'unmutated')
}
