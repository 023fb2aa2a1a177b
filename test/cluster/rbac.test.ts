/**
 * The shipped RBAC on a real kube-apiserver with its RBAC authorizer: the webhook's and the audit CronJob's
 * ServiceAccounts (deploy/rbac, deploy/components/audit-cronjob) applied as shipped, and each identity asked with
 * its own TokenRequest token (as a kubelet mounts it) what it may do. Everything its ClusterRole grants is allowed,
 * everything else a compromised pod would want is forbidden. The admission tests run the webhook itself with the
 * same token; here the audit CronJob's own command runs with the audit token and does its work.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { ensureBundle } from '../support/cluster-webhook.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { type Doc, get, list, parse } from '../support/manifests.ts'
import { poll, ROOT } from '../support/process.ts'

const cluster = await controlPlane()

const WEBHOOK_RBAC = 'deploy/rbac/rbac.yaml'
const AUDIT_RBAC = 'deploy/components/audit-cronjob/rbac.yaml'
const AUDIT_CRONJOB = 'deploy/components/audit-cronjob/cronjob.yaml'
const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'

interface Rule {
  apiGroups: string[]
  resources: string[]
  verbs: string[]
  resourceNames?: string[]
}

/** `kubectl auth can-i` arguments for every (verb, resource[/name]) a ClusterRole grants. */
function grants(file: string): string[][] {
  const role = parse(readFileSync(join(ROOT, file), 'utf8')).find(
    (doc) => doc['kind'] === 'ClusterRole',
  ) as Doc
  return list<Rule>(role, 'rules').flatMap((rule) =>
    rule.verbs.flatMap((verb) =>
      rule.resources.flatMap((resource) => {
        const group = rule.apiGroups[0] === '' ? '' : `.${rule.apiGroups[0]}`
        const [base, sub] = resource.split('/')
        const target = `${base}${group}`
        const subresource = sub === undefined ? [] : [`--subresource=${sub}`]
        return (rule.resourceNames ?? [undefined]).map((name) => [
          verb,
          name === undefined ? target : `${target}/${name}`,
          ...subresource,
        ])
      }),
    ),
  )
}

describe('the shipped RBAC on a real kube-apiserver', { skip: cluster.skip }, () => {
  let cp: ControlPlane
  let webhook: string
  let audit: string
  const canI = async (kubeconfig: string, args: string[], namespace = 'default') => {
    const result = await cp.kubectl(['auth', 'can-i', ...args, '-n', namespace], { kubeconfig })
    if (result.code > 1) throw new Error(result.stderr)
    return result.code === 0
  }
  before(
    async () => {
      cp = usable(cluster)
      await cp.kubectlOk(['apply', '-k', join(ROOT, 'deploy/rbac')])
      await cp.kubectlOk(['apply', '-f', join(ROOT, AUDIT_RBAC)])
      webhook = await cp.serviceAccountKubeconfig('irsa-system', 'irsa-webhook')
      audit = await cp.serviceAccountKubeconfig('irsa-system', 'irsa-webhook-audit')
    },
    { timeout: 60_000 },
  )

  for (const [who, file] of [
    ['webhook', WEBHOOK_RBAC],
    ['audit', AUDIT_RBAC],
  ] as const) {
    it(`${who}: its token may do everything its ClusterRole grants, in any namespace`, async () => {
      const kubeconfig = who === 'webhook' ? webhook : audit
      const asked = grants(file)
      assert.ok(asked.length >= 3)
      for (const args of asked)
        for (const ns of ['default', 'kube-system'])
          assert.equal(
            await canI(kubeconfig, args, ns),
            true,
            `${who} can ${args.join(' ')} in ${ns}`,
          )
    })
  }

  const forbidden: [string, string[][]][] = [
    [
      'webhook',
      [
        ['get', 'pods'],
        ['create', 'pods'],
        ['get', 'secrets'],
        ['list', 'secrets'],
        ['update', 'serviceaccounts'],
        ['create', 'serviceaccounts/token'],
        ['create', 'events'],
        ['patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/irsa-webhook'],
      ],
    ],
    [
      'audit',
      [
        ['delete', 'pods'],
        ['update', 'pods'],
        ['get', 'secrets'],
        ['update', 'serviceaccounts'],
        ['create', 'serviceaccounts/token'],
        ['patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/irsa-webhook'],
        ['get', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/another-webhook'],
        ['list', 'mutatingwebhookconfigurations.admissionregistration.k8s.io'],
        ['delete', 'deployments.apps'],
        ['get', 'deployments.apps'],
      ],
    ],
  ]
  for (const [who, denied] of forbidden) {
    it(`${who}: its token is forbidden what it does not need`, async () => {
      const kubeconfig = who === 'webhook' ? webhook : audit
      for (const args of denied)
        assert.equal(await canI(kubeconfig, args), false, `${who} must not ${args.join(' ')}`)
    })
  }

  it("the audit CronJob's own command does its work with the audit token: finds, heals, records Events", async () => {
    ensureBundle()
    // Pods created while no webhook serves their namespace: a Deployment's pod (its controller recreates it) and
    // a bare pod. The namespace sorts early ("a-"), so the run's --max-evictions (10, cluster-wide) is not spent on
    // other tests' namespaces first.
    const namespace = await cp.namespace('a-cronjob-audit')
    const container = { name: 'app', image: 'registry.example/app:1.2.3' }
    const spec = { serviceAccountName: 'app', containers: [container] }
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
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
              replicas: 1,
              selector: { matchLabels: { app: 'web' } },
              template: { metadata: { labels: { app: 'web' } }, spec },
            },
          },
          { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'solo', namespace }, spec },
        ],
      }),
    })
    const web = await poll(
      async () => {
        const pods = await cp.getJson<{ items: Doc[] }>(['pods', '-n', namespace, '-l', 'app=web'])
        return pods.items.length === 1 ? String(get(pods.items[0], 'metadata.name')) : undefined
      },
      'the controller-manager to create the Deployment pod',
      30_000,
    )
    const cronJob = parse(readFileSync(join(ROOT, AUDIT_CRONJOB), 'utf8'))[0] as Doc
    const command = get(
      cronJob,
      'spec.jobTemplate.spec.template.spec.containers.0.command',
    ) as string[]
    assert.equal(command[0], 'node')
    const run = spawnSync(process.execPath, [...command.slice(1), '--kubeconfig', audit], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '' },
      timeout: 60_000,
    })
    // --job: exit 0 when the run did its work, whatever it found (the findings are in the report). Anything else is
    // a failure to do the work, e.g. a forbidden LIST (exit 3).
    assert.equal(run.status, 0, `exit ${run.status}: ${run.stderr}`)
    assert.doesNotMatch(run.stderr, /forbidden/i)
    const report = JSON.parse(run.stdout) as {
      pods: { namespace: string; name: string; problem: string; action: string; event: string }[]
      summary: { complete: boolean }
    }
    assert.equal(report.summary.complete, true)
    const ours = report.pods
      .filter((pod) => pod.namespace === namespace)
      .map(({ name, problem, action, event }) => ({ name, problem, action, event }))
    assert.deepEqual(ours, [
      { name: 'solo', problem: 'missing', action: 'reported', event: 'recorded' },
      { name: web, problem: 'missing', action: 'evicted', event: 'recorded' },
    ])
    // The Events the audit token recorded, as kubectl reads them.
    const events = await cp.getJson<{ items: Doc[] }>([
      'events',
      '-n',
      namespace,
      '--field-selector',
      'reason=IRSACredentialsMissing',
    ])
    assert.deepEqual(
      events.items.map((event) => get(event, 'involvedObject.name')).sort(),
      ['solo', web].sort(),
    )
    // The evicted pod is gone (its replacement is the ReplicaSet's business).
    const gone = await cp.kubectl(['get', 'pod', web, '-n', namespace])
    assert.equal(gone.code, 1, gone.stdout)
  })
})
