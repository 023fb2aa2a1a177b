/**
 * `irsa-webhook audit` on a real control plane: pods created while no webhook was registered — a bare pod and the
 * two pods the controller-manager makes for a 2-replica Deployment, all with an annotated ServiceAccount — are found
 * missing their identity once the webhook is registered; `--heal --events` evicts at most one pod per owner, is
 * blocked by a real PodDisruptionBudget (the real 429), stores its Events (kubectl reads them back), and the pod
 * the ReplicaSet makes in place of an evicted one comes back through the webhook with its identity.
 *
 * No kubelet runs, so pods stay Pending, and the Eviction API ignores PodDisruptionBudgets for Pending pods
 * (k8s.io/kubernetes pkg/registry/core/pod/storage/eviction.go, canIgnorePDB: Succeeded, Failed, Pending or
 * already-deleting pods are evicted whatever the budget). To test the budget for real, the test acts as the
 * kubelet for the Deployment's pods: as admin it sets their status to Running and Ready through the status
 * subresource; the controller-manager's disruption controller then computes the budget's status from them, and an
 * eviction that would violate it gets the API server's 429.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ENV } from '../../function/names.ts'
import { runCli } from '../support/cluster-cli.ts'
import {
  type ClusterWebhook,
  SCOPE_LABEL,
  startClusterWebhook,
} from '../support/cluster-webhook.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { poll } from '../support/process.ts'

const cluster = await controlPlane()
// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects as JSON
type Json = Record<string, any>

const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const SCOPE = `audit-${process.pid}`

interface Report {
  pods: {
    namespace: string
    name: string
    serviceAccount: string
    problem: string
    detail: string
    owner: { kind: string; name: string } | null
    action?: string
    reason?: string
    event?: string
  }[]
  skipped: unknown[]
  summary: Json
}

const container = { name: 'app', image: 'registry.example/app:1.2.3' }
const manifests = (namespace: string): Json[] => [
  {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'app', namespace, annotations: { 'api.vultr.com/role': ROLE } },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { serviceAccountName: 'app', containers: [container] },
      },
    },
  },
  {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'solo', namespace },
    spec: { serviceAccountName: 'app', containers: [container] },
  },
]

describe('audit on a real control plane', { skip: cluster.skip }, () => {
  let cp: ControlPlane
  let namespace: string
  let hook: ClusterWebhook | undefined
  let configuration: string
  const audit = async (...args: string[]) => {
    const run = await runCli(
      ['audit', '-n', namespace, '--configuration', configuration, '-o', 'json', ...args],
      { kubeconfig: cp.kubeconfig },
    )
    assert.ok(run.code === 0 || run.code === 1, `exit ${run.code}: ${run.stderr}`)
    return { code: run.code, report: JSON.parse(run.stdout) as Report, stderr: run.stderr }
  }
  const webPods = async () =>
    (await cp.getJson<{ items: Json[] }>(['pods', '-n', namespace, '-l', 'app=web'])).items
  const pdbStatus = async () => (await cp.getJson(['pdb', 'web', '-n', namespace])) as Json

  before(
    async () => {
      cp = usable(cluster)
      // The namespace carries the scope label from the start, but no webhook of that scope is registered yet:
      // every pod below is stored as created, without its identity.
      namespace = await cp.namespace('cli-audit', { [SCOPE_LABEL]: SCOPE })
      await cp.kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests(namespace) }),
      })
      await poll(
        async () => ((await webPods()).length === 2 ? true : undefined),
        'the controller-manager to create the Deployment pods',
        30_000,
      )
      hook = await startClusterWebhook(cp, { scope: SCOPE })
      configuration = String(
        hook.configuration['metadata'] && (hook.configuration['metadata'] as Json)['name'],
      )
    },
    { timeout: 120_000 },
  )
  after(() => hook?.close())

  it('finds the three pods created without the webhook: exit 1, JSON with their owners', async () => {
    const { code, report } = await audit()
    assert.equal(code, 1)
    const web = (await webPods()).map((pod) => pod['metadata'].name).sort()
    assert.deepEqual(
      report.pods.map((pod) => [pod.name, pod.problem, pod.serviceAccount, pod.owner]),
      [
        // In the API server's listing order (by name).
        ['solo', 'missing', 'app', null],
        ...web.map((name) => [name, 'missing', 'app', { kind: 'Deployment', name: 'web' }]),
      ],
    )
    for (const pod of report.pods)
      assert.equal(
        pod.detail,
        'token volume vultr-irsa-token; container app: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_STS_REGIONAL_ENDPOINTS, AWS_ENDPOINT_URL_STS, token mount',
      )
    assert.equal(report.summary['scope'], namespace)
    assert.equal(report.summary['missing'], 3)
    assert.equal(report.summary['complete'], true)
  })

  it('--heal --events: a real PodDisruptionBudget blocks the eviction (429); Events are stored', async () => {
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'web', namespace },
        spec: { minAvailable: 2, selector: { matchLabels: { app: 'web' } } },
      }),
    })
    // Act as the kubelet (see the module comment): Running and Ready, so the budget counts them and applies.
    for (const pod of await webPods())
      await cp.kubectlOk([
        'patch',
        'pod',
        pod['metadata'].name,
        '-n',
        namespace,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({
          status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
        }),
      ])
    await poll(
      async () => {
        const pdb = await pdbStatus()
        const s = pdb['status'] ?? {}
        return s.observedGeneration === pdb['metadata'].generation &&
          s.currentHealthy === 2 &&
          s.disruptionsAllowed === 0
          ? true
          : undefined
      },
      'the disruption controller to count 2 healthy pods',
      30_000,
    )

    const { code, report, stderr } = await audit('--heal', '--events')
    assert.equal(code, 1, stderr)
    const [solo, first, second] = report.pods
    assert.equal(first?.action, 'blocked-by-pdb', JSON.stringify(report.pods, null, 1))
    assert.equal(
      first?.reason,
      "HTTP 429: Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget web needs 2 healthy pods and has 2 currently); retried next run",
    )
    assert.equal(second?.action, 'skipped')
    assert.equal(second?.reason, 'one eviction per owner per run: next run')
    assert.equal(solo?.action, 'reported')
    assert.match(solo?.reason ?? '', /^a bare pod: no controller would recreate it/)
    assert.deepEqual(
      report.pods.map((pod) => pod.event),
      ['recorded', 'recorded', 'recorded'],
    )
    // Both web pods are still there: nothing was forced.
    assert.equal((await webPods()).length, 2)

    // The Events, as kubectl reads them back: one Warning per pod, on the pod.
    const events = (
      await cp.getJson<{ items: Json[] }>([
        'events',
        '-n',
        namespace,
        '--field-selector',
        'reason=IRSACredentialsMissing',
      ])
    ).items
    assert.deepEqual(
      events.map((e) => e['involvedObject'].name).sort(),
      report.pods.map((pod) => pod.name).sort(),
    )
    for (const event of events) {
      assert.equal(event['type'], 'Warning')
      assert.equal(event['involvedObject'].kind, 'Pod')
      assert.equal(event['source'].component, 'irsa-webhook-audit')
      assert.match(
        event['message'],
        new RegExp(`^ServiceAccount ${namespace}/app has a Vultr role`),
      )
    }
    // kubectl describe lists it (core/v1 Events by involvedObject).
    const describe = await cp.kubectlOk(['describe', 'pod', 'solo', '-n', namespace])
    assert.match(describe, /Warning\s+IRSACredentialsMissing\s+.*irsa-webhook-audit/)
  })

  it('--heal with room in the budget: one pod per owner evicted, recreated through the webhook', async () => {
    await cp.kubectlOk([
      'patch',
      'pdb',
      'web',
      '-n',
      namespace,
      '--type=merge',
      '-p',
      '{"spec":{"minAvailable":1}}',
    ])
    await poll(
      async () => {
        const pdb = await pdbStatus()
        const s = pdb['status'] ?? {}
        return s.observedGeneration === pdb['metadata'].generation && s.disruptionsAllowed === 1
          ? true
          : undefined
      },
      'the disruption controller to allow one disruption',
      30_000,
    )
    const before = (await webPods()).map((pod) => pod['metadata'].name as string)
    const { code, report } = await audit('--heal', '--events')
    assert.equal(code, 1)
    const [solo, first, second] = report.pods
    assert.equal(first?.action, 'evicted')
    assert.equal(first?.reason, 'its controller recreates it through the webhook')
    assert.equal(second?.action, 'skipped')
    assert.equal(solo?.action, 'reported')
    // A rerun finds the Events of the first run instead of adding more.
    assert.deepEqual(
      report.pods.map((pod) => pod.event),
      ['exists', 'exists', 'exists'],
    )

    // The ReplicaSet replaces the evicted pod; the replacement went through the webhook.
    const replacement = await poll(
      async () => {
        const pods = await webPods()
        const fresh = pods.filter((pod) => !before.includes(pod['metadata'].name))
        return pods.length === 2 && fresh.length === 1 ? fresh[0] : undefined
      },
      'the ReplicaSet to replace the evicted pod',
      30_000,
    )
    assert.ok(!before.includes(replacement['metadata'].name))
    const env = (replacement['spec'].containers[0].env ?? []).map((e: Json) => e['name'])
    assert.ok(env.includes(ENV.roleArn), JSON.stringify(replacement['spec']))

    // The next run: the replacement is fine, the other two are still missing.
    const next = await audit()
    assert.equal(next.code, 1)
    assert.deepEqual(next.report.pods.map((pod) => pod.name).sort(), [second?.name, 'solo'].sort())
    assert.equal(next.report.summary['ok'], 1)
  })
})
