// irsa-webhook audit against the loopback fake kube-apiserver: stored pods (some admitted by the real webhook, some
// admitted while it was down) are classified with the webhook's own decision, grouped by owner, and healed within
// the bounds (one eviction per owner, --max-evictions, PodDisruptionBudgets).

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { parseYamlDocuments } from '../../../function/yaml.ts'
import {
  type AuditCluster,
  admitted,
  EXAMPLE_NAMESPACES,
  OTHER_ROLE,
  podManifest,
  populateExample,
  ROLE,
  serviceAccount,
  startAuditCluster,
  stored,
} from '../../support/audit-cluster.ts'
import { runChild, runInProcess } from '../../support/cli-fake-cluster.ts'
import { kubeStatus } from '../../support/fake-kube-api.ts'
import { PDB_VIOLATION } from '../../support/fake-kube-api-pods.ts'
import { requestInfo } from '../../support/kube-apiserver-wire.ts'
import { ROOT } from '../../support/process.ts'

type Json = Record<string, unknown>

interface Entry {
  namespace: string
  name: string
  serviceAccount: string
  problem: string
  detail: string
  owner: { kind: string; name: string; apiVersion?: string } | null
  action?: string
  reason?: string
  event?: string
}

interface Report {
  pods: Entry[]
  skipped: { namespace: string; name: string; reason: string }[]
  summary: Json
}

function audit(cluster: AuditCluster, ...extra: string[]) {
  return runInProcess(['audit', '--kubeconfig', cluster.api.kubeconfigPath, ...extra])
}

async function auditJson(cluster: AuditCluster, ...extra: string[]) {
  const run = await audit(cluster, '-o', 'json', ...extra)
  return { ...run, report: JSON.parse(run.stdout) as Report }
}

function byName(report: Report): Map<string, Entry> {
  return new Map(report.pods.map((entry) => [entry.name, entry]))
}

describe('irsa-webhook audit', () => {
  let cluster: AuditCluster
  beforeEach(async () => {
    cluster = await startAuditCluster(EXAMPLE_NAMESPACES)
    await populateExample(cluster)
  })
  afterEach(() => cluster.close())

  test('classifies each stored pod with the webhook decision and exits 1 when some pod is missing its identity', async () => {
    const { code, report, stderr } = await auditJson(cluster)
    assert.equal(code, 1, stderr)
    const problems = Object.fromEntries(
      report.pods.map((e) => [`${e.namespace}/${e.name}`, e.problem]),
    )
    assert.deepEqual(problems, {
      'apps/hello-00001-deployment-5d9f7-abcde': 'missing',
      'batch/migrate-yyyyy': 'missing',
      'batch/report-28930000-zzzzz': 'missing',
      'shop/agent-x1': 'missing',
      'shop/api-58c9d-qqqqq': 'missing',
      'shop/bad-role': 'invalid-role',
      'shop/db-0': 'role-differs',
      'shop/db-1': 'missing',
      'shop/foreign-volume': 'volume-conflict',
      'shop/sidecar-missing': 'missing',
      'shop/web-6d4b9c7f5-aaaaa': 'missing',
      'shop/web-6d4b9c7f5-bbbbb': 'missing',
    })
    const pods = byName(report)
    // skip-containers: only the container the webhook would touch is named.
    assert.match(pods.get('sidecar-missing')?.detail ?? '', /container app: AWS_ROLE_ARN/)
    assert.doesNotMatch(pods.get('sidecar-missing')?.detail ?? '', /proxy/)
    assert.match(
      pods.get('web-6d4b9c7f5-aaaaa')?.detail ?? '',
      /^token volume vultr-irsa-token; container app: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_STS_REGIONAL_ENDPOINTS, AWS_ENDPOINT_URL_STS, token mount$/,
    )
    assert.match(pods.get('bad-role')?.detail ?? '', /"not-a-role"/)
    assert.match(
      pods.get('db-0')?.detail ?? '',
      new RegExp(`container app: AWS_ROLE_ARN is not the ServiceAccount's ${ROLE}`),
    )
    assert.match(pods.get('foreign-volume')?.detail ?? '', /already exists/)
    assert.equal(pods.get('web-6d4b9c7f5-aaaaa')?.serviceAccount, 'web')
    assert.deepEqual(report.summary['notAudited'], {
      finished: 1,
      mirror: 1,
      excludedNamespace: 2,
      excludedLabels: 1,
    })
    assert.equal(report.summary['missing'], 9)
    assert.equal(report.summary['complete'], true)
  })

  test('groups by owner: Deployment (ReplicaSet read, or by name), StatefulSet, DaemonSet, CronJob, Job, Knative Service, none', async () => {
    const { report } = await auditJson(cluster)
    const owners = Object.fromEntries(report.pods.map((e) => [e.name, e.owner]))
    assert.deepEqual(owners['web-6d4b9c7f5-aaaaa'], { kind: 'Deployment', name: 'web' })
    assert.deepEqual(owners['api-58c9d-qqqqq'], { kind: 'Deployment', name: 'api' })
    assert.deepEqual(owners['db-1'], { kind: 'StatefulSet', name: 'db' })
    assert.deepEqual(owners['agent-x1'], { kind: 'DaemonSet', name: 'agent' })
    assert.deepEqual(owners['report-28930000-zzzzz'], { kind: 'CronJob', name: 'report' })
    assert.deepEqual(owners['migrate-yyyyy'], { kind: 'Job', name: 'migrate' })
    assert.deepEqual(owners['hello-00001-deployment-5d9f7-abcde'], {
      kind: 'Service',
      name: 'hello',
      apiVersion: 'serving.knative.dev/v1',
    })
    assert.equal(owners['sidecar-missing'], null)
    // One GET per ReplicaSet, however many pods share it.
    const rsGets = cluster.api.requests.filter((r) => r.path.endsWith('/replicasets/web-6d4b9c7f5'))
    assert.equal(rsGets.length, 1)
    const table = await audit(cluster)
    assert.match(
      table.stdout,
      /^Deployment shop\/web\n {2}POD +SERVICEACCOUNT +PROBLEM +DETAIL\n {2}web-6d4b9c7f5-aaaaa +web +missing/m,
    )
    assert.match(table.stdout, /^Knative Service apps\/hello$/m)
    assert.match(table.stdout, /^CronJob batch\/report$/m)
    assert.match(table.stdout, /^no owner \(bare pods\)$/m)
  })

  test('-o json: one object with pods (namespace, name, serviceAccount, problem, owner) and a summary', async () => {
    const { report } = await auditJson(cluster, '-n', 'batch')
    assert.deepEqual(Object.keys(report), ['pods', 'skipped', 'summary'])
    assert.deepEqual(Object.keys(report.pods[0] ?? {}), [
      'namespace',
      'name',
      'serviceAccount',
      'problem',
      'detail',
      'owner',
    ])
    assert.equal(report.pods.length, 2)
    assert.equal(report.summary['scope'], 'batch')
    assert.ok(cluster.api.requests.some((r) => r.path === '/api/v1/namespaces/batch/pods'))
    assert.ok(!cluster.api.requests.some((r) => r.path === '/api/v1/pods'))
  })

  test('exit 0 when nothing is missing; role-differs/invalid-role/volume-conflict alone do not fail', async () => {
    const empty = await audit(cluster, '-n', 'plain')
    assert.equal(empty.code, 0, empty.stderr)
    assert.match(empty.stdout, /0 pods scanned \(plain\)/)
    // The same three cases as in shop, in a namespace with no pod missing its identity.
    cluster.putServiceAccount(serviceAccount('plain', 'app'))
    cluster.putServiceAccount(
      serviceAccount('plain', 'bad', { 'api.vultr.com/role': 'not-a-role' }),
    )
    const spec = { namespace: 'plain', serviceAccount: 'app' }
    const then = serviceAccount('plain', 'app', { 'api.vultr.com/role': OTHER_ROLE })
    cluster.pods.put(stored(await admitted(podManifest({ ...spec, name: 'moved' }), [then])))
    cluster.pods.put(stored(podManifest({ ...spec, name: 'bad-role', serviceAccount: 'bad' })))
    const volumes = [{ name: 'vultr-irsa-token', emptyDir: {} }]
    cluster.pods.put(stored(podManifest({ ...spec, name: 'foreign-volume', volumes })))
    const { code, report, stderr } = await auditJson(cluster, '-n', 'plain')
    assert.equal(code, 0, stderr)
    assert.deepEqual(Object.fromEntries(report.pods.map((e) => [e.name, e.problem])), {
      'bad-role': 'invalid-role',
      'foreign-volume': 'volume-conflict',
      moved: 'role-differs',
    })
    assert.equal(report.summary['missing'], 0)
  })

  test('usage errors exit 2', async () => {
    for (const args of [
      ['-o', 'yaml'],
      ['--heal-role-changes'],
      ['--heal', '--max-evictions', 'x'],
      ['--chunk-size', '0'],
      ['--set', 'NOPE=1'],
    ]) {
      const run = await audit(cluster, ...args)
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.match(run.stderr, /See: irsa-webhook audit --help/)
    }
  })

  test('--heal evicts one pod per owner, reports bare/Job/invalid pods and leaves role-differs alone', async () => {
    const { code, report } = await auditJson(cluster, '--heal')
    assert.equal(code, 1)
    const actions = Object.fromEntries(report.pods.map((e) => [e.name, e.action]))
    assert.deepEqual(actions, {
      'hello-00001-deployment-5d9f7-abcde': 'evicted',
      'migrate-yyyyy': 'reported',
      'report-28930000-zzzzz': 'reported',
      'agent-x1': 'evicted',
      'api-58c9d-qqqqq': 'evicted',
      'bad-role': 'reported',
      'db-0': 'reported',
      'db-1': 'evicted',
      'foreign-volume': 'reported',
      'sidecar-missing': 'reported',
      'web-6d4b9c7f5-aaaaa': 'evicted',
      'web-6d4b9c7f5-bbbbb': 'skipped',
    })
    const pods = byName(report)
    assert.match(pods.get('web-6d4b9c7f5-bbbbb')?.reason ?? '', /one eviction per owner/)
    assert.match(pods.get('sidecar-missing')?.reason ?? '', /bare pod/)
    assert.match(pods.get('db-0')?.reason ?? '', /--heal-role-changes/)
    assert.deepEqual(
      cluster.pods.evictions.map((e) => `${e.namespace}/${e.name} ${e.status}`),
      [
        'apps/hello-00001-deployment-5d9f7-abcde 201',
        'shop/agent-x1 201',
        'shop/api-58c9d-qqqqq 201',
        'shop/db-1 201',
        'shop/web-6d4b9c7f5-aaaaa 201',
      ],
    )
    const body = JSON.parse(
      cluster.api.requests.find((r) => r.path.endsWith('/eviction'))?.body ?? '{}',
    )
    assert.equal(body.apiVersion, 'policy/v1')
    assert.equal(body.kind, 'Eviction')
    assert.equal(cluster.pods.get('shop', 'web-6d4b9c7f5-aaaaa'), undefined)
    assert.deepEqual(report.summary['actions'], {
      evicted: 5,
      'blocked-by-pdb': 0,
      reported: 6,
      skipped: 1,
      failed: 0,
    })
  })

  test('--max-evictions bounds the run; --heal-role-changes evicts role-differs pods', async () => {
    const { report } = await auditJson(
      cluster,
      '-n',
      'shop',
      '--heal',
      '--max-evictions',
      '3',
      '--heal-role-changes',
    )
    assert.equal(cluster.pods.evictions.length, 3)
    const pods = byName(report)
    assert.equal(pods.get('db-0')?.action, 'evicted', pods.get('db-0')?.reason)
    assert.equal(pods.get('db-1')?.action, 'skipped')
    assert.match(pods.get('web-6d4b9c7f5-aaaaa')?.reason ?? '', /--max-evictions 3 reached/)
  })

  test('a PodDisruptionBudget with no disruption left: blocked-by-pdb, never forced', async () => {
    cluster.pods.addBudget({
      namespace: 'shop',
      name: 'web-pdb',
      matchLabels: { app: 'web' },
      disruptionsAllowed: 0,
      desiredHealthy: 2,
      currentHealthy: 2,
    })
    const { report } = await auditJson(cluster, '--heal', '-n', 'shop')
    const web = byName(report).get('web-6d4b9c7f5-aaaaa')
    assert.equal(web?.action, 'blocked-by-pdb')
    assert.ok(web?.reason?.includes(PDB_VIOLATION), web?.reason)
    assert.match(
      web?.reason ?? '',
      /The disruption budget web-pdb needs 2 healthy pods and has 2 currently/,
    )
    assert.ok(cluster.pods.get('shop', 'web-6d4b9c7f5-aaaaa'))
    // The owner had its one try this run: the second pod is not tried.
    assert.equal(byName(report).get('web-6d4b9c7f5-bbbbb')?.action, 'skipped')
    assert.equal(cluster.pods.evictions.filter((e) => e.name.startsWith('web-')).length, 1)
  })

  test('before evicting, a fresh GET must still show the same pod, not being deleted, missing its identity', async () => {
    const uidOf = (name: string) =>
      (cluster.pods.get('shop', name)?.['metadata'] as Json | undefined)?.['uid']
    // agent-x1 now carries its identity (same uid); db-1 was deleted and recreated (a new uid), still unmutated.
    const fixed = await admitted(
      podManifest({
        namespace: 'shop',
        name: 'agent-x1',
        serviceAccount: 'web',
        owner: { kind: 'DaemonSet', name: 'agent' },
      }),
      cluster.serviceAccounts,
    )
    ;(fixed['metadata'] as Json)['uid'] = uidOf('agent-x1')
    const recreated = podManifest({
      namespace: 'shop',
      name: 'db-1',
      serviceAccount: 'web',
      owner: { kind: 'StatefulSet', name: 'db' },
    })
    // web-…-aaaaa is being deleted (a rollout): skipped, so the Deployment's one eviction goes to web-…-bbbbb.
    const terminating = structuredClone(cluster.pods.get('shop', 'web-6d4b9c7f5-aaaaa') ?? {})
    ;(terminating['metadata'] as Json)['deletionTimestamp'] = '2026-12-04T09:30:00Z'
    // Replaced after the first page of the listing (served from its snapshot), before the heal's GET.
    cluster.pods.onListPage = (index) => {
      if (index === 1) {
        cluster.pods.put(stored(fixed))
        cluster.pods.put(stored(recreated))
        cluster.pods.put(terminating)
      }
      return undefined
    }
    const { report } = await auditJson(cluster, '--heal', '-n', 'shop', '--chunk-size', '2')
    const pods = byName(report)
    assert.equal(pods.get('agent-x1')?.problem, 'missing')
    assert.deepEqual(
      { action: pods.get('agent-x1')?.action, reason: pods.get('agent-x1')?.reason },
      { action: 'skipped', reason: 'a fresh GET shows it no longer needs healing' },
    )
    assert.deepEqual(
      { action: pods.get('db-1')?.action, reason: pods.get('db-1')?.reason },
      { action: 'skipped', reason: 'the pod was recreated meanwhile' },
    )
    assert.deepEqual(
      {
        action: pods.get('web-6d4b9c7f5-aaaaa')?.action,
        reason: pods.get('web-6d4b9c7f5-aaaaa')?.reason,
      },
      { action: 'skipped', reason: 'the pod is already being deleted' },
    )
    assert.equal(pods.get('web-6d4b9c7f5-bbbbb')?.action, 'evicted')
    assert.deepEqual(
      cluster.pods.evictions.map((e) => e.name).filter((name) => /agent-x1|db-1|web-/.test(name)),
      ['web-6d4b9c7f5-bbbbb'],
    )
  })

  test('--events records a Warning Event on each pod found, once', async () => {
    const { report } = await auditJson(cluster, '--events', '-n', 'shop')
    // Every shop pod of the example but the excluded, finished and mirror ones (so the every() below is not vacuous).
    assert.equal(report.pods.length, 9)
    assert.equal(cluster.pods.events.length, report.pods.length)
    const event = cluster.pods.events.find(
      (e) => (e['involvedObject'] as Json)['name'] === 'web-6d4b9c7f5-aaaaa',
    ) as Json
    assert.equal(event['type'], 'Warning')
    assert.equal(event['reason'], 'IRSACredentialsMissing')
    assert.equal((event['involvedObject'] as Json)['kind'], 'Pod')
    assert.equal(
      (event['involvedObject'] as Json)['uid'],
      (cluster.pods.get('shop', 'web-6d4b9c7f5-aaaaa')?.['metadata'] as Json | undefined)?.['uid'],
    )
    assert.match(
      String(event['message']),
      /ServiceAccount shop\/web .*missing: token volume vultr-irsa-token/,
    )
    assert.ok(report.pods.every((e) => e.event === 'recorded'))
    const again = await auditJson(cluster, '--events', '-n', 'shop')
    assert.ok(again.report.pods.every((e) => e.event === 'exists'))
    assert.equal(cluster.pods.events.length, report.pods.length)
  })

  test('a pod or ServiceAccount of an unexpected shape is skipped with the reason', async () => {
    cluster.pods.put(
      stored(
        podManifest({
          namespace: 'plain',
          name: 'odd',
          containers: [{ name: 'app', env: 'not-a-list' }],
        }),
      ),
    )
    cluster.api.setServiceAccount({
      kind: 'ServiceAccount',
      metadata: { name: 'weird', namespace: 'plain', annotations: { 'api.vultr.com/role': 5 } },
    })
    cluster.pods.put(
      stored(podManifest({ namespace: 'plain', name: 'weird-sa', serviceAccount: 'weird' })),
    )
    const { code, report } = await auditJson(cluster, '-n', 'plain')
    assert.equal(code, 0)
    const reasons = Object.fromEntries(report.skipped.map((s) => [s.name, s.reason]))
    assert.match(reasons['odd'] ?? '', /spec\.containers\[0\]\.env: expected array, got string/)
    assert.match(reasons['weird-sa'] ?? '', /ServiceAccount has an unexpected shape/)
    assert.equal(report.summary['skipped'], 2)
  })

  test('410 Gone for an expired continue token: the listing restarts once and finds every pod once', async () => {
    let expired = false
    cluster.pods.onListPage = (index) => {
      if (index === 2 && !expired) {
        expired = true
        cluster.pods.expireContinueTokens()
      }
      return undefined
    }
    const { code, report, stderr } = await auditJson(cluster, '--chunk-size', '3')
    assert.equal(code, 1)
    assert.match(
      stderr,
      /listing pods failed \(LIST \/api\/v1\/pods: HTTP 410: The provided continue parameter is too old/,
    )
    assert.equal(report.pods.length, 12)
    assert.equal(new Set(report.pods.map((e) => e.name)).size, 12)
    assert.equal(
      report.summary['scanned'],
      20,
      'pods seen before the restart are not counted twice',
    )
    assert.equal(report.summary['complete'], true)
    const gone = cluster.api.requests.filter(
      (r) => r.path === '/api/v1/pods' && r.query.has('continue'),
    )
    assert.ok(gone.length > 0)
    // Restarted once: two listings from the first page.
    const starts = cluster.api.requests.filter(
      (r) => r.path === '/api/v1/pods' && !r.query.has('continue'),
    )
    assert.equal(starts.length, 2)
  })

  test('a second failure mid-listing exits 3 with the findings so far printed', async () => {
    cluster.pods.onListPage = (index) =>
      index >= 2 ? kubeStatus(500, 'etcdserver: request timed out') : undefined
    const { code, report, stderr } = await auditJson(cluster, '--chunk-size', '3', '--heal')
    assert.equal(code, 3)
    assert.match(stderr, /etcdserver: request timed out \(after one restart\)/)
    assert.equal(report.summary['complete'], false)
    assert.ok(report.pods.length > 0 && report.pods.length < 12, String(report.pods.length))
    assert.equal(cluster.pods.evictions.length, 0, 'nothing is evicted after an incomplete listing')
  })

  test('--job: a run that found pods exits 0 (reported, and as Events); one that could not read the cluster exits 3', async () => {
    const found = await auditJson(cluster, '--heal', '--events', '--job')
    assert.equal(found.code, 0, found.stderr)
    const missing = found.report.pods.filter((e) => e.problem === 'missing')
    assert.ok(missing.length > 0)
    assert.ok(missing.some((e) => e.action === 'reported' && /bare pod/.test(e.reason ?? '')))
    assert.ok(missing.every((e) => e.event === 'recorded' || e.event === 'exists'))
    assert.match(
      found.stderr,
      new RegExp(
        `${missing.length} pod\\(s\\) missing their identity, reported above \\(exit 0: --job\\)`,
      ),
    )
    cluster.pods.onListPage = (index) =>
      index >= 2 ? kubeStatus(500, 'etcdserver: request timed out') : undefined
    const unreadable = await auditJson(cluster, '--chunk-size', '3', '--heal', '--job')
    assert.equal(unreadable.code, 3)
  })

  test('403 on the pod LIST exits 3 naming the missing RBAC verb', async () => {
    cluster.api.fault({ path: '/api/v1/pods', status: 403 })
    const run = await audit(cluster)
    assert.equal(run.code, 3)
    assert.match(
      run.stderr,
      /cannot list pods cluster-wide: forbidden .*grant the RBAC verb "list" on "pods"/,
    )
  })

  test('403 on the ServiceAccount LIST exits 3 before any pod is read', async () => {
    cluster.api.fault({ path: '/api/v1/serviceaccounts', status: 403 })
    const run = await audit(cluster)
    assert.equal(run.code, 3)
    assert.match(run.stderr, /grant the RBAC verb "list" on "serviceaccounts"/)
    assert.equal(run.stdout, '')
  })

  test('403 on the namespaces LIST (needed for the namespaceSelector) or the configuration exits 3 naming it', async () => {
    cluster.api.fault({ path: '/api/v1/namespaces', status: 403, times: 1 })
    const namespaces = await audit(cluster)
    assert.equal(namespaces.code, 3)
    assert.match(namespaces.stderr, /grant the RBAC verb "list" on "namespaces"/)
    cluster.api.fault({
      path: /mutatingwebhookconfigurations\/irsa-webhook$/,
      status: 403,
      times: 1,
    })
    const configuration = await audit(cluster)
    assert.equal(configuration.code, 3)
    assert.match(
      configuration.stderr,
      /grant the RBAC verb "get" on "mutatingwebhookconfigurations.admissionregistration.k8s.io"/,
    )
  })

  test('a kubeconfig that cannot be loaded exits 3 saying so', async () => {
    const run = await runInProcess(['audit', '--kubeconfig', '/nonexistent/kubeconfig'])
    assert.equal(run.code, 3)
    assert.match(run.stderr, /cannot read the cluster: .*nonexistent/)
  })

  test('each ServiceAccount is read once per run: one LIST, no GET per pod', async () => {
    await audit(cluster)
    assert.equal(cluster.api.requests.filter((r) => r.path === '/api/v1/serviceaccounts').length, 1)
    assert.equal(
      cluster.api.requests.filter((r) => /\/serviceaccounts\/[^/]+$/.test(r.path)).length,
      0,
    )
  })

  test('without the MutatingWebhookConfiguration nothing is excluded by selectors (and it says so)', async () => {
    const { report, stderr } = await auditJson(cluster, '--configuration', 'other')
    assert.match(stderr, /MutatingWebhookConfiguration other not found/)
    assert.deepEqual(report.summary['notAudited'], {
      finished: 1,
      mirror: 1,
      excludedNamespace: 0,
      excludedLabels: 0,
    })
  })

  test("the heal CronJob's command runs as written, and its ClusterRole allows every call it makes, each rule used", async () => {
    interface Rule {
      apiGroups: string[]
      resources: string[]
      verbs: string[]
      resourceNames?: string[]
    }
    const component = (file: string) =>
      parseYamlDocuments(
        readFileSync(`${ROOT}deploy/components/audit-cronjob/${file}`, 'utf8'),
      ) as Json[]
    const role = component('rbac.yaml').find((doc) => doc['kind'] === 'ClusterRole')
    const rules = (role?.['rules'] ?? []) as Rule[]
    const [cronJob] = component('cronjob.yaml') as {
      spec: {
        jobTemplate: { spec: { template: { spec: { containers: { command: string[] }[] } } } }
      }
    }[]
    const command = cronJob?.spec.jobTemplate.spec.template.spec.containers[0]?.command ?? []
    const args = command.slice(command.indexOf('dist/cli.js') + 1)
    assert.equal(args[0], 'audit', command.join(' '))
    // A pod whose ServiceAccount the LIST does not have: the one GET of a ServiceAccount.
    cluster.pods.put(
      stored(podManifest({ namespace: 'plain', name: 'ghost-sa', serviceAccount: 'ghost' })),
    )
    const run = await runInProcess([...args, '--kubeconfig', cluster.api.kubeconfigPath])
    // --job: the run did its work, so the Job succeeds although it found pods (reported, and as Events).
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stderr, /pod\(s\) missing their identity, reported above \(exit 0: --job\)/)
    const report = JSON.parse(run.stdout) as Report
    assert.equal(report.summary['complete'], true)
    assert.ok(report.pods.some((e) => e.action === 'evicted' && e.event === 'recorded'))
    const used = new Set<string>()
    for (const req of cluster.api.requests) {
      // The RBAC attributes kube-apiserver authorizes (apiserver pkg/endpoints/request/requestinfo.go).
      const info = requestInfo(req)
      assert.ok(info.resourceRequest, req.path)
      const resource = info.subresource ? `${info.resource}/${info.subresource}` : info.resource
      const index = rules.findIndex(
        (rule) =>
          rule.apiGroups.includes(info.apiGroup) &&
          rule.resources.includes(resource) &&
          rule.verbs.includes(info.verb) &&
          (rule.resourceNames === undefined || rule.resourceNames.includes(info.name)),
      )
      assert.ok(index >= 0, `${info.verb} ${resource}.${info.apiGroup} ${info.name}: not allowed`)
      used.add(`${index} ${info.verb}`)
    }
    const granted = rules.flatMap((rule, index) => rule.verbs.map((verb) => `${index} ${verb}`))
    assert.deepEqual(
      granted.filter((grant) => !used.has(grant)),
      [],
      'every verb of every rule is used',
    )
  })

  test('the bin runs it (child process) with the documented exit code', async () => {
    const run = await runChild(['audit', '--kubeconfig', cluster.api.kubeconfigPath, '-n', 'batch'])
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stdout, /^CronJob batch\/report$/m)
  })
})
