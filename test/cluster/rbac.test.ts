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
import { ROOT } from '../support/process.ts'

const cluster = await controlPlane()

const WEBHOOK_RBAC = 'deploy/rbac/rbac.yaml'
const AUDIT_RBAC = 'deploy/components/audit-cronjob/rbac.yaml'
const AUDIT_CRONJOB = 'deploy/components/audit-cronjob/cronjob.yaml'

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

  it("the audit CronJob's own command does its work with the audit token", async () => {
    ensureBundle()
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
    // 0: nothing missing; 1: pods missing their identity (other tests leave such pods). Anything else is a failure
    // to do the work, e.g. a forbidden LIST (exit 3).
    assert.ok(run.status === 0 || run.status === 1, `exit ${run.status}: ${run.stderr}`)
    const report = JSON.parse(run.stdout) as { summary?: unknown }
    assert.ok(report.summary !== undefined, run.stdout.slice(0, 500))
    assert.doesNotMatch(run.stderr, /forbidden/i)
  })
})
