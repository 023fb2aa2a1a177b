/**
 * What only a real API server can show about admission, through the webhook as it runs in production
 * (test/support/cluster-webhook.ts): reinvocation after a later webhook adds a container, `--dry-run=server`, a
 * ServiceAccount created in the same apply as its pod, the namespace and pod exclusions, the opt-in label profile
 * with failurePolicy Fail (the webhook up, then down), and a webhook failure as kubectl shows it. No kubelet runs, so
 * pods stay Pending.
 */
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import { after, before, describe, it } from 'node:test'
import { ENV, TOKEN_VOLUME } from '../../function/names.ts'
import { createPod, normalise, storedPod } from '../support/cluster-pods.ts'
import {
  type ClusterWebhook,
  SCOPE_LABEL,
  startClusterWebhook,
} from '../support/cluster-webhook.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { poll } from '../support/process.ts'
import { createTestCertificates, type TestCertificates } from '../support/tls.ts'

const cluster = await controlPlane()
// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects as JSON
type Json = Record<string, any>

const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const roleAccount = (name = 'app-sa'): Json => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name, annotations: { 'api.vultr.com/role': ROLE } },
})
const pod = (name: string, containers: string[], extra: Json = {}): Json => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, ...(extra['metadata'] ?? {}) },
  spec: {
    serviceAccountName: 'app-sa',
    containers: containers.map((c) => ({ name: c, image: 'registry.example/app:1.2.3' })),
    ...(extra['spec'] ?? {}),
  },
})

const allContainers = (stored: Json): Json[] => [
  ...(stored['spec'].initContainers ?? []),
  ...stored['spec'].containers,
]
const names = (entries: Json[] | undefined) => (entries ?? []).map((e) => e['name'])
const hasIdentity = (container: Json) =>
  names(container['env']).includes(ENV.roleArn) &&
  names(container['volumeMounts']).includes(TOKEN_VOLUME.name)

/** Asserts every container of the stored pod got the identity exactly once. */
function assertCovered(stored: Json): void {
  for (const container of allContainers(stored)) {
    assert.ok(hasIdentity(container), `container ${container['name']} has no identity`)
    for (const list of [names(container['env']), names(container['volumeMounts'])])
      assert.equal(new Set(list).size, list.length, `duplicates in ${container['name']}`)
  }
  const volumes = names(stored['spec'].volumes)
  assert.equal(volumes.filter((v) => v === TOKEN_VOLUME.name).length, 1)
}

/** The webhook's `admission review` log lines for one pod. */
const reviewsOf = (hook: ClusterWebhook, namespace: string, podName: string) =>
  hook.server.logs.filter(
    (line) =>
      line['msg'] === 'admission review' &&
      line['namespace'] === namespace &&
      line['pod'] === podName,
  )

describe('admission scenarios on a real kube-apiserver', { skip: cluster.skip }, () => {
  let cp: ControlPlane
  let hook: ClusterWebhook
  before(
    async () => {
      cp = usable(cluster)
      hook = await startClusterWebhook(cp, { scope: 'scenarios' })
    },
    { timeout: 120_000 },
  )
  after(() => hook?.close())

  it('is reinvoked after a later webhook adds a container, and covers it without duplicates', async () => {
    const injector = await startInjector(cp, hook.scope)
    try {
      const ns = await cp.namespace('reinvoke', hook.namespaceLabels)
      const created = await createPod(cp, ns, {
        serviceAccount: roleAccount(),
        pod: pod('web', ['app']),
      })
      assert.equal(created.code, 0, created.stderr)
      const stored = await storedPod(cp, ns, 'web')
      assert.deepEqual(names(stored['spec'].containers), ['app', 'injected-sidecar'])
      assertCovered(stored)
      assert.equal(reviewsOf(hook, ns, 'web').length, 2, 'called once, then reinvoked once')
    } finally {
      await injector.close()
    }
  })

  it('mutates a --dry-run=server pod and stores nothing', async () => {
    const ns = await cp.namespace('dry-run', hook.namespaceLabels)
    const created = await createPod(
      cp,
      ns,
      { serviceAccount: roleAccount(), pod: pod('dry', ['app']) },
      ['--dry-run=server'],
    )
    assert.equal(created.code, 0, created.stderr)
    assertCovered(JSON.parse(created.stdout))
    const get = await cp.kubectl(['get', 'pod', 'dry', '-n', ns])
    assert.notEqual(get.code, 0)
    assert.match(get.stderr, /NotFound|not found/)
    assert.equal(reviewsOf(hook, ns, 'dry')[0]?.['dryRun'], true)
  })

  it('mutates a pod whose ServiceAccount is created in the same apply, just before it', async () => {
    const ns = await cp.namespace('same-apply', hook.namespaceLabels)
    const items = Array.from({ length: 5 }, (_, i) => [
      roleAccount(`fresh-${i}`),
      {
        ...pod(`fresh-${i}`, ['app']),
        spec: { ...pod('', ['app'])['spec'], serviceAccountName: `fresh-${i}` },
      },
    ]).flat()
    await cp.kubectlOk(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }),
    })
    for (let i = 0; i < 5; i += 1) assertCovered(await storedPod(cp, ns, `fresh-${i}`))
  })

  it('leaves pods alone in a namespace labelled irsa-webhook=disabled, and pods with that label', async () => {
    const optedOut = await cp.namespace('opted-out', {
      ...hook.namespaceLabels,
      'irsa-webhook': 'disabled',
    })
    const served = await cp.namespace('served', hook.namespaceLabels)
    const control = await cp.namespace('control')
    const plain = pod('web', ['app'])
    const labelled = pod('labelled', ['app'], {
      metadata: { labels: { 'irsa-webhook': 'disabled' } },
    })
    for (const [ns, p] of [
      [optedOut, plain],
      [served, labelled],
      [control, plain],
      [control, labelled],
    ] as const) {
      const created = await createPod(cp, ns, { serviceAccount: roleAccount(), pod: p })
      assert.equal(created.code, 0, created.stderr)
    }
    assert.deepEqual(
      normalise(await storedPod(cp, optedOut, 'web')),
      normalise(await storedPod(cp, control, 'web')),
    )
    assert.deepEqual(
      normalise(await storedPod(cp, served, 'labelled')),
      normalise(await storedPod(cp, control, 'labelled')),
    )
    assert.equal(
      reviewsOf(hook, served, 'labelled').length,
      0,
      'the API server never called the webhook',
    )
  })

  it('shows a webhook failure (its ServiceAccount lookup forbidden) with our Status message in kubectl', async () => {
    const ns = await cp.namespace('rbac-revoked', hook.namespaceLabels)
    const binding = await cp.kubectlOk([
      'get',
      'clusterrolebinding',
      'irsa-webhook-sa-reader',
      '-o',
      'json',
    ])
    await cp.kubectlOk(['delete', 'clusterrolebinding', 'irsa-webhook-sa-reader'])
    try {
      const created = await createPod(cp, ns, {
        serviceAccount: roleAccount('revoked-sa'),
        pod: {
          ...pod('revoked', ['app']),
          spec: { ...pod('', ['app'])['spec'], serviceAccountName: 'revoked-sa' },
        },
      })
      assert.notEqual(created.code, 0, 'failurePolicy Fail: the pod is refused')
      const failure = hook.server.logs.find(
        (line) => line['msg'] === 'admission review failed' && line['pod'] === 'revoked',
      )
      assert.ok(failure, 'the webhook logged the failed review')
      const message = String(failure['error'])
      assert.match(message, /forbidden|403/i)
      assert.ok(
        created.stderr.includes(`failed calling webhook "irsa.vultr.com"`) &&
          created.stderr.includes(message),
        `kubectl shows the webhook's message in its failed-calling line; it printed:\n${created.stderr}`,
      )
    } finally {
      const restored = JSON.parse(binding) as Json
      for (const key of ['uid', 'resourceVersion', 'creationTimestamp', 'managedFields'])
        delete restored['metadata'][key]
      await cp.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(restored) })
    }
  })
})

describe('the classic shape (watch mode: an informer cache) on a real kube-apiserver', {
  skip: cluster.skip,
}, () => {
  let cp: ControlPlane
  let hook: ClusterWebhook
  before(
    async () => {
      cp = usable(cluster)
      hook = await startClusterWebhook(cp, { scope: 'classic', shape: 'classic' })
    },
    { timeout: 120_000 },
  )
  after(() => hook?.close())

  it('runs with the Deployment env (SA_LOOKUP_MODE=watch)', () => {
    const listening = hook.server.logs.find((line) => line['msg'] === 'listening')
    assert.match(String(listening?.['serviceAccounts']), /watch/, JSON.stringify(listening))
  })

  it('mutates pods whose ServiceAccounts are created in the same apply, before the informer has them', async () => {
    const ns = await cp.namespace('classic-same-apply', hook.namespaceLabels)
    const items = Array.from({ length: 5 }, (_, i) => [
      roleAccount(`fresh-${i}`),
      {
        ...pod(`fresh-${i}`, ['app']),
        spec: { ...pod('', ['app'])['spec'], serviceAccountName: `fresh-${i}` },
      },
    ]).flat()
    await cp.kubectlOk(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }),
    })
    for (let i = 0; i < 5; i += 1) assertCovered(await storedPod(cp, ns, `fresh-${i}`))
  })
})

describe('the opt-in label profile on a real kube-apiserver', { skip: cluster.skip }, () => {
  let cp: ControlPlane
  let hook: ClusterWebhook
  let ns: string
  before(
    async () => {
      cp = usable(cluster)
      hook = await startClusterWebhook(cp, { scope: 'opt-in', profile: 'opt-in' })
      ns = await cp.namespace('opt-in', hook.namespaceLabels)
      await cp.kubectlOk(['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(roleAccount()) })
    },
    { timeout: 120_000 },
  )
  after(() => hook?.close())
  const optIn = { metadata: { labels: { 'api.vultr.com/irsa': 'true' } } }

  it('registers failurePolicy Fail and mutates only labelled pods', async () => {
    assert.equal((hook.configuration as Json)['webhooks'][0].failurePolicy, 'Fail')
    assert.equal((await createPod(cp, ns, { pod: pod('labelled', ['app'], optIn) })).code, 0)
    assert.equal((await createPod(cp, ns, { pod: pod('unlabelled', ['app']) })).code, 0)
    assertCovered(await storedPod(cp, ns, 'labelled'))
    const unlabelled = await storedPod(cp, ns, 'unlabelled')
    assert.equal(hasIdentity(unlabelled['spec'].containers[0]), false)
    assert.equal(
      reviewsOf(hook, ns, 'unlabelled').length,
      0,
      'an unlabelled pod never calls the webhook',
    )
  })

  it('with the webhook down, refuses a labelled pod and admits an unlabelled one', async () => {
    await hook.stopServer()
    const refused = await createPod(cp, ns, { pod: pod('labelled-down', ['app'], optIn) })
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /failed calling webhook "irsa\.vultr\.com"/)
    const admitted = await createPod(cp, ns, { pod: pod('unlabelled-down', ['app']) })
    assert.equal(admitted.code, 0, admitted.stderr)
  })
})

/**
 * A second mutating webhook, as a sidecar injector (Dapr, Istio) is: it adds a container. Its configuration's name
 * sorts after ours, so the API server calls it after ours and then reinvokes ours (reinvocationPolicy IfNeeded).
 */
async function startInjector(cp: ControlPlane, scope: string) {
  const certs: TestCertificates = createTestCertificates({
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  })
  const server: Server = createServer({ cert: certs.certPem, key: certs.keyPem }, (req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk
    })
    req.on('end', () => {
      const review = JSON.parse(body) as Json
      const containers = names(review['request'].object.spec.containers)
      const patch = containers.includes('injected-sidecar')
        ? []
        : [
            {
              op: 'add',
              path: '/spec/containers/-',
              value: { name: 'injected-sidecar', image: 'registry.example/sidecar:1' },
            },
          ]
      const response: Json = { uid: review['request'].uid, allowed: true }
      if (patch.length > 0) {
        response['patchType'] = 'JSONPatch'
        response['patch'] = Buffer.from(JSON.stringify(patch)).toString('base64')
      }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ apiVersion: review['apiVersion'], kind: review['kind'], response }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const name = `zz-irsa-test-injector-${scope}`
  const configuration = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'injector.irsa-test.example',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        reinvocationPolicy: 'Never',
        clientConfig: {
          url: `https://127.0.0.1:${port}/inject`,
          caBundle: Buffer.from(certs.caPem).toString('base64'),
        },
        rules: [
          { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] },
        ],
        namespaceSelector: {
          matchExpressions: [{ key: SCOPE_LABEL, operator: 'In', values: [scope] }],
        },
      },
    ],
  }
  await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(configuration) })
  // Registered once a dry-run pod in a namespace of the scope comes back with the injected container.
  const probe = await cp.namespace('injector-probe', { [SCOPE_LABEL]: scope })
  await cp.kubectlOk(['apply', '-n', probe, '-f', '-'], { input: JSON.stringify(roleAccount()) })
  await poll(
    async () => {
      const result = await cp.kubectl(
        ['create', '--dry-run=server', '-o', 'json', '-n', probe, '-f', '-'],
        {
          input: JSON.stringify(pod('probe', ['app'])),
        },
      )
      return result.stdout.includes('injected-sidecar') ? true : undefined
    },
    'the injector webhook to be called',
    30_000,
  )
  return {
    async close() {
      await cp.kubectl(['delete', 'mutatingwebhookconfiguration', name, '--ignore-not-found'])
      await new Promise((resolve) => server.close(resolve))
      rmSync(certs.dir, { recursive: true, force: true })
    },
  }
}
