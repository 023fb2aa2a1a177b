// irsa-webhook mutate: the webhook's own decision on manifests, checked against the webhook app itself (admit()).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseYamlDocuments, stringifyYamlDocuments } from '../../../function/yaml.ts'
import { ROLE, ROOT, runChild, runInProcess } from '../../support/cli-fake-cluster.ts'
import { loadJson } from '../../support/fixtures.ts'
import { admit } from '../../support/webhook.ts'

const fixture = (name: string) => loadJson(`admission/${name}`)

const SERVICE_ACCOUNTS = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: uploader
  namespace: shop
  annotations:
    api.vultr.com/role: ${ROLE}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: plain
  namespace: shop
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/x
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: broken
  namespace: shop
  annotations:
    api.vultr.com/role: not-a-role
`

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      serviceAccountName: uploader
      initContainers:
        - name: migrate
          image: migrate:1
      containers:
        - name: app
          image: app:1
          env:
            - name: LOG_LEVEL
              value: debug
`

const CRONJOB = `apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: shop
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: uploader
          restartPolicy: OnFailure
          containers:
            - name: report
              image: report:1
`

const podOfKind = (
  kind: string,
  serviceAccountName: string,
) => `apiVersion: ${kind === 'Job' ? 'batch/v1' : 'apps/v1'}
kind: ${kind}
metadata:
  name: x
  namespace: shop
spec:
  template:
    spec:
      serviceAccountName: ${serviceAccountName}
      containers:
        - name: c
          image: c:1
`

const FILES = { 'sa.yaml': SERVICE_ACCOUNTS, 'deploy.yaml': DEPLOYMENT, 'cron.yaml': CRONJOB }

function reviewFor(pod: object, namespace: string) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-1',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace,
      object: pod,
    },
  }
}

const plain = (value: unknown) => JSON.parse(JSON.stringify(value))
const yamlDocs = (text: string) => parseYamlDocuments(text).map(plain)

describe('irsa-webhook mutate', () => {
  test('a Deployment gets exactly the pod template the webhook would produce for its pods', async () => {
    const run = await runInProcess(['mutate', '-s', 'sa.yaml', 'deploy.yaml'], FILES)
    assert.equal(run.code, 0, run.stderr)
    const [deployment] = yamlDocs(run.stdout)
    const input = yamlDocs(DEPLOYMENT)[0]
    const pod = { apiVersion: 'v1', kind: 'Pod', ...input.spec.template }
    const webhook = await admit(reviewFor(pod, 'shop'), yamlDocs(SERVICE_ACCOUNTS))
    assert.deepEqual(deployment.spec.template.spec, plain(webhook.mutatedPod.spec))
    assert.deepEqual(deployment.spec.selector, input.spec.selector)
    assert.match(
      run.stderr,
      /Deployment shop\/web: outcome: mutated — ServiceAccount shop\/uploader has api\.vultr\.com\/role/,
    )
  })

  test('a CronJob is mutated in spec.jobTemplate.spec.template', async () => {
    const run = await runInProcess(['mutate', '-s', 'sa.yaml', 'cron.yaml'], FILES)
    assert.equal(run.code, 0, run.stderr)
    const [cronjob] = yamlDocs(run.stdout)
    const spec = cronjob.spec.jobTemplate.spec.template.spec
    assert.equal(spec.volumes[0].name, 'vultr-irsa-token')
    const env = spec.containers[0].env
    assert.deepEqual(env[0], { name: 'AWS_ROLE_ARN', value: ROLE })
    assert.equal(cronjob.spec.schedule, '0 3 * * *')
  })

  for (const kind of ['StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']) {
    test(`a ${kind} is mutated in spec.template`, async () => {
      const run = await runInProcess(['mutate', '-s', 'sa.yaml', 'w.yaml'], {
        ...FILES,
        'w.yaml': podOfKind(kind, 'uploader'),
      })
      assert.equal(run.code, 0, run.stderr)
      const [doc] = yamlDocs(run.stdout)
      assert.equal(doc.spec.template.spec.containers[0].env[0].value, ROLE)
    })
  }

  test('a bare Pod from the real admission fixtures equals the webhook result, patch and all', async () => {
    const review = fixture('pod-irsa-multi-container.json')
    const sa = fixture('serviceaccount-irsa-sa.json')
    const files = {
      'pod.json': JSON.stringify(review.request.object),
      'sa.json': JSON.stringify(sa),
    }
    const webhook = await admit(review, [sa])
    const run = await runInProcess(['mutate', '-s', 'sa.json', '-o', 'json', 'pod.json'], files)
    assert.equal(run.code, 0, run.stderr)
    assert.deepEqual(JSON.parse(run.stdout), plain(webhook.mutatedPod))
    const patch = await runInProcess(['mutate', '-s', 'sa.json', '--patch', 'pod.json'], files)
    assert.deepEqual(JSON.parse(patch.stdout), webhook.patch)
    assert.match(patch.stderr, /patch paths are relative to the pod \(the manifest itself\)/)
  })

  test('several documents keep their order, and ServiceAccounts in the input are used and printed', async () => {
    const stream = `${SERVICE_ACCOUNTS}---\n${CRONJOB}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: shop}\ndata: {a: "1"}\n---\n${DEPLOYMENT}`
    const run = await runInProcess(['mutate', '-'], { '-': stream })
    assert.equal(run.code, 0, 'an invalid role on a ServiceAccount no pod uses denies nothing')
    const docs = yamlDocs(run.stdout)
    assert.deepEqual(
      docs.map((d) => `${d.kind}/${d.metadata.name}`),
      [
        'ServiceAccount/uploader',
        'ServiceAccount/plain',
        'ServiceAccount/broken',
        'CronJob/nightly',
        'ConfigMap/cm',
        'Deployment/web',
      ],
    )
    assert.equal(docs[5].spec.template.spec.containers[0].env.at(-1).name, 'AWS_ENDPOINT_URL_STS')
  })

  test('--patch prints one JSON Patch per workload, relative to the pod unless --manifest-paths', async () => {
    const relative = await runInProcess(
      ['mutate', '-s', 'sa.yaml', '--patch', 'deploy.yaml'],
      FILES,
    )
    const [first] = JSON.parse(relative.stdout)
    assert.equal(first.path, '/spec/volumes')
    assert.match(relative.stderr, /relative to the pod \(in the manifest: prefix \/spec\/template/)
    const rebased = await runInProcess(
      ['mutate', '-s', 'sa.yaml', '--patch', '--manifest-paths', 'deploy.yaml'],
      FILES,
    )
    const ops = JSON.parse(rebased.stdout) as { path: string }[]
    assert.ok(ops.every((op) => op.path.startsWith('/spec/template/spec/')))
    const pod = { apiVersion: 'v1', kind: 'Pod', ...yamlDocs(DEPLOYMENT)[0].spec.template }
    const webhook = await admit(reviewFor(pod, 'shop'), yamlDocs(SERVICE_ACCOUNTS))
    assert.deepEqual(JSON.parse(relative.stdout), webhook.patch)
  })

  test('a ServiceAccount without the role says not-annotated and names the look-alike annotation', async () => {
    const run = await runInProcess(['mutate', '-s', 'sa.yaml', 'w.yaml'], {
      ...FILES,
      'w.yaml': podOfKind('Job', 'plain'),
    })
    assert.equal(run.code, 0)
    assert.match(
      run.stderr,
      /outcome: not-annotated — ServiceAccount shop\/plain has no api\.vultr\.com\/role annotation; pod not mutated \(it has "eks\.amazonaws\.com\/role-arn"/,
    )
    assert.deepEqual(yamlDocs(run.stdout), yamlDocs(podOfKind('Job', 'plain')))
  })

  test('a ServiceAccount missing from the input says sa-not-found', async () => {
    const run = await runInProcess(['mutate', '-s', 'sa.yaml', 'w.yaml'], {
      ...FILES,
      'w.yaml': podOfKind('Job', 'ghost'),
    })
    assert.equal(run.code, 0)
    assert.match(
      run.stderr,
      /outcome: sa-not-found — ServiceAccount shop\/ghost is not among the given ServiceAccounts/,
    )
  })

  test('an invalid role is a denial (exit 1), or a warning with --set INVALID_ROLE_POLICY=warn', async () => {
    const files = { ...FILES, 'w.yaml': podOfKind('Job', 'broken') }
    const denied = await runInProcess(['mutate', '-s', 'sa.yaml', 'w.yaml'], files)
    assert.equal(denied.code, 1)
    assert.match(
      denied.stderr,
      /outcome: invalid-role — the webhook DENIES this pod: ServiceAccount shop\/broken annotation api\.vultr\.com\/role has invalid value "not-a-role"/,
    )
    const warned = await runInProcess(
      ['mutate', '-s', 'sa.yaml', '--set', 'INVALID_ROLE_POLICY=warn', 'w.yaml'],
      files,
    )
    assert.equal(warned.code, 0)
    assert.match(warned.stderr, /warning: api\.vultr\.com\/role "not-a-role" is not a role UUID/)
  })

  test('bad command lines exit 2 with a pointer to --help', async () => {
    const noFile = await runInProcess(['mutate'])
    assert.equal(noFile.code, 2)
    assert.match(noFile.stderr, /See: irsa-webhook mutate --help/)
    const badSet = await runInProcess(['mutate', '--set', 'INVALID_ROLE_POLICY=maybe', 'x'], FILES)
    assert.equal(badSet.code, 2)
    assert.match(badSet.stderr, /INVALID_ROLE_POLICY/)
    const typo = await runInProcess(['mutate', '--set', 'INVALID_ROLE_POLCY=warn', 'x'], FILES)
    assert.equal(typo.code, 2)
    assert.match(typo.stderr, /--set takes STS_ENDPOINT, .*; got INVALID_ROLE_POLCY/)
  })

  test('the bin runs as a child process, reading the manifest from stdin', async () => {
    const sa = `${ROOT}examples/service-accounts.yaml`
    const [pod] = [
      stringifyYamlDocuments([
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'p', namespace: 'default' },
          spec: {
            serviceAccountName: 'my-app',
            // Fields newer than any typed model must survive the YAML round trip.
            containers: [{ name: 'app', image: 'app:1', futureField: { keep: true } }],
            initContainers: [{ name: 'sidecar', image: 's:1', restartPolicy: 'Always' }],
          },
        },
      ]),
    ]
    const run = await runChild(['mutate', '--service-account', sa, '-'], pod ?? '')
    assert.equal(run.code, 0, run.stderr)
    const [mutated] = yamlDocs(run.stdout)
    assert.equal(mutated.spec.containers[0].env[0].value, ROLE)
    assert.deepEqual(mutated.spec.containers[0].futureField, { keep: true })
    assert.equal(mutated.spec.initContainers[0].restartPolicy, 'Always')
    assert.equal(mutated.spec.initContainers[0].env[0].value, ROLE)
    assert.match(run.stderr, /Pod default\/p: outcome: mutated/)
  })
})
