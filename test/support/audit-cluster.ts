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
import { podReview } from './fixtures.ts'
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
  const result = await admit(podReview(pod), serviceAccounts)
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
function shippedConfiguration(): Json {
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

/** How a pod of the example was admitted: while the webhook was down, or by it (optionally with another role). */
type Admission = 'unmutated' | 'mutated' | { readonly mutatedWithRole: string }

interface ExamplePod extends PodSpec {
  readonly admission: Admission
}

const HASH = '6d4b9c7f5'
const WEB = { serviceAccount: 'web', labels: { app: 'web', 'pod-template-hash': HASH } }
const WEB_RS = { kind: 'ReplicaSet', name: `web-${HASH}` }
const SIDECAR = {
  serviceAccount: 'web',
  annotations: { 'api.vultr.com/skip-containers': 'proxy' },
  containers: [
    { name: 'app', image: 'registry.example/app:1' },
    { name: 'proxy', image: 'registry.example/proxy:1' },
  ],
}

/** One pod per case; test/cli/audit/audit.test.ts states what each must come to. */
const EXAMPLE_PODS: readonly ExamplePod[] = [
  { namespace: 'shop', name: `web-${HASH}-aaaaa`, owner: WEB_RS, ...WEB, admission: 'unmutated' },
  { namespace: 'shop', name: `web-${HASH}-bbbbb`, owner: WEB_RS, ...WEB, admission: 'unmutated' },
  { namespace: 'shop', name: `web-${HASH}-ccccc`, owner: WEB_RS, ...WEB, admission: 'mutated' },
  // Its ReplicaSet is not readable (404): the Deployment is named by convention.
  {
    namespace: 'shop',
    name: 'api-58c9d-qqqqq',
    serviceAccount: 'web',
    owner: { kind: 'ReplicaSet', name: 'api-58c9d' },
    labels: { 'pod-template-hash': '58c9d' },
    admission: 'unmutated',
  },
  { namespace: 'shop', name: 'debug', serviceAccount: 'plain', admission: 'unmutated' },
  { namespace: 'shop', name: 'sidecar-ok', ...SIDECAR, admission: 'mutated' },
  { namespace: 'shop', name: 'sidecar-missing', ...SIDECAR, admission: 'unmutated' },
  { namespace: 'shop', name: 'bad-role', serviceAccount: 'bad', admission: 'unmutated' },
  {
    namespace: 'shop',
    name: 'foreign-volume',
    serviceAccount: 'web',
    volumes: [{ name: 'vultr-irsa-token', emptyDir: {} }],
    admission: 'unmutated',
  },
  // Admitted while shop/web had OTHER_ROLE; the annotation changed since.
  {
    namespace: 'shop',
    name: 'db-0',
    serviceAccount: 'web',
    owner: { kind: 'StatefulSet', name: 'db' },
    admission: { mutatedWithRole: OTHER_ROLE },
  },
  {
    namespace: 'shop',
    name: 'db-1',
    serviceAccount: 'web',
    owner: { kind: 'StatefulSet', name: 'db' },
    admission: 'unmutated',
  },
  {
    namespace: 'shop',
    name: 'agent-x1',
    serviceAccount: 'web',
    owner: { kind: 'DaemonSet', name: 'agent' },
    admission: 'unmutated',
  },
  {
    namespace: 'shop',
    name: 'finished',
    serviceAccount: 'web',
    phase: 'Succeeded',
    admission: 'unmutated',
  },
  {
    namespace: 'shop',
    name: 'static-node-1',
    serviceAccount: 'web',
    annotations: { 'kubernetes.io/config.mirror': 'abc' },
    admission: 'unmutated',
  },
  {
    namespace: 'shop',
    name: 'irsa-webhook-own',
    serviceAccount: 'web',
    labels: { 'app.kubernetes.io/name': 'irsa-webhook' },
    admission: 'unmutated',
  },
  {
    namespace: 'batch',
    name: 'report-28930000-zzzzz',
    serviceAccount: 'worker',
    owner: { kind: 'Job', name: 'report-28930000' },
    admission: 'unmutated',
  },
  {
    namespace: 'batch',
    name: 'migrate-yyyyy',
    serviceAccount: 'worker',
    owner: { kind: 'Job', name: 'migrate' },
    admission: 'unmutated',
  },
  {
    namespace: 'apps',
    name: 'hello-00001-deployment-5d9f7-abcde',
    serviceAccount: 'hello',
    owner: { kind: 'ReplicaSet', name: 'hello-00001-deployment-5d9f7' },
    labels: {
      'serving.knative.dev/service': 'hello',
      'serving.knative.dev/revision': 'hello-00001',
    },
    admission: 'unmutated',
  },
  { namespace: 'kube-system', name: 'coredns-x', serviceAccount: 'web', admission: 'unmutated' },
  { namespace: 'quiet', name: 'quiet-x', serviceAccount: 'web', admission: 'unmutated' },
]

/** The ServiceAccounts as they are now, and the owners the audit reads. */
function putExampleObjects(cluster: AuditCluster): void {
  cluster.pods.putNamespace('quiet', { 'irsa-webhook': 'disabled' })
  for (const [namespace, name, annotations] of [
    ['shop', 'web', undefined],
    ['shop', 'plain', {}],
    ['shop', 'bad', { 'api.vultr.com/role': 'not-a-role' }],
    ['batch', 'worker', undefined],
    ['apps', 'hello', undefined],
    ['kube-system', 'web', undefined],
    ['irsa-system', 'irsa-webhook', undefined],
    ['quiet', 'web', undefined],
  ] as const) {
    cluster.putServiceAccount(serviceAccount(namespace, name, annotations))
  }
  const controller = (kind: string, name: string, apiVersion: string) => [
    { apiVersion, kind, name, controller: true },
  ]
  cluster.pods.putOwner('/apis/apps/v1/namespaces/shop/replicasets', {
    metadata: {
      name: `web-${HASH}`,
      namespace: 'shop',
      ownerReferences: controller('Deployment', 'web', 'apps/v1'),
    },
  })
  cluster.pods.putOwner('/apis/batch/v1/namespaces/batch/jobs', {
    metadata: {
      name: 'report-28930000',
      namespace: 'batch',
      ownerReferences: controller('CronJob', 'report', 'batch/v1'),
    },
  })
  cluster.pods.putOwner('/apis/batch/v1/namespaces/batch/jobs', {
    metadata: { name: 'migrate', namespace: 'batch' },
  })
}

async function admittedPod(cluster: AuditCluster, spec: ExamplePod): Promise<Json> {
  const manifest = podManifest(spec)
  if (spec.admission === 'unmutated') return manifest
  if (spec.admission === 'mutated') return admitted(manifest, cluster.serviceAccounts)
  const then = serviceAccount(spec.namespace, spec.serviceAccount ?? 'default', {
    'api.vultr.com/role': spec.admission.mutatedWithRole,
  })
  return admitted(manifest, [then])
}

/**
 * One pod per case the audit tells apart, in a cluster from `startAuditCluster(EXAMPLE_NAMESPACES)`
 * (test/cli/audit/audit.test.ts states what each must come to; the examples in docs/cli.md are this cluster).
 */
export async function populateExample(cluster: AuditCluster): Promise<void> {
  putExampleObjects(cluster)
  for (const spec of EXAMPLE_PODS) {
    cluster.pods.put(stored(await admittedPod(cluster, spec), spec.phase))
  }
}
