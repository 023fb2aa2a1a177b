/**
 * The Helm chart on the real control plane (test/support/control-plane.ts) with the real Helm (test/support/helm.ts):
 * `helm install`, `helm upgrade` with changed values, `helm uninstall` leaving nothing behind, and the API server's
 * own validation of what the chart renders (`kubectl apply --dry-run=server`).
 *
 * Sharing one control plane with the other cluster tests: each release has its own namespace and its own name, so
 * its cluster-scoped objects (named after the release) never meet another test's, and its webhook is limited by
 * `namespaceSelector.matchExpressions` to namespaces labelled for this file, which no other test creates: with
 * failurePolicy Fail and no pod ever ready (no kubelet runs), an unscoped webhook would refuse every Pod of the run.
 * No `--wait`: Deployments never become ready here.
 *
 * Knative mode and the cert-manager source need their CRDs: test/support/crds.ts installs those of the pinned
 * releases (from their Go modules). No Knative or cert-manager controller runs: the objects are stored and
 * validated by their schemas, nothing reconciles them.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { LABELS } from '../../function/names.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { installCrds, pinnedCrds } from '../support/crds.ts'
import { helmOrSkip, runHelm } from '../support/helm.ts'
import { type Doc, get, list, parse } from '../support/manifests.ts'
import { poll, ROOT } from '../support/process.ts'

const cluster = await controlPlane()
const found = cluster.skip === false ? await helmOrSkip() : undefined
const skip = cluster.skip || found?.skip || false

const CHART = join(ROOT, 'charts/irsa-webhook')
/** A lifecycle test runs some 30 helm and kubectl commands (about 30 s alone): a bound well above the default 60 s. */
const SLOW = 240_000
const IMAGE = [
  'image.repository',
  'ghcr.io/owner/irsa-webhook',
  'image.digest',
  `sha256:${'ab'.repeat(32)}`,
]
/** The label that would send a namespace's Pods to these releases' webhooks; no namespace of the run carries it. */
const SCOPE = { key: 'irsa-test/chart', operator: 'In', values: ['never-labelled'] }

/** `--set-string`/`--set-json` arguments from flat key, value pairs. */
function setArgs(values: readonly unknown[]): string[] {
  const args: string[] = []
  for (let i = 0; i < values.length; i += 2)
    args.push(
      ...(typeof values[i + 1] === 'string'
        ? ['--set-string', `${values[i]}=${values[i + 1]}`]
        : ['--set-json', `${values[i]}=${JSON.stringify(values[i + 1])}`]),
    )
  return args
}

/** One object of a release's manifest: what `kubectl get` needs to find it. */
interface Ref {
  readonly kind: string
  readonly apiVersion: string
  readonly name: string
  readonly namespace: string | undefined
}
const refOf = (doc: Doc): Ref => ({
  kind: String(doc['kind']),
  apiVersion: String(doc['apiVersion']),
  name: String(get(doc, 'metadata.name')),
  namespace: get(doc, 'metadata.namespace') as string | undefined,
})
const show = (ref: Ref) => `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`
/**
 * kubectl's resource argument: kind.version.group, so a kind of another group (a Knative Service) never answers for
 * it; a core kind by its name alone (kubectl has no qualified form for the core group).
 */
const resource = (ref: Ref) => {
  const [group, version] = ref.apiVersion.split('/')
  return version === undefined
    ? ref.kind.toLowerCase()
    : `${ref.kind.toLowerCase()}.${version}.${group}`
}

describe('the chart on the real control plane (helm install, upgrade, uninstall)', { skip }, () => {
  const cp = (): ControlPlane => usable(cluster)
  const helm = (args: string[]) =>
    runHelm(found?.helm as string, args, { kubeconfig: cp().kubeconfig })
  const helmOk = (args: string[]) => {
    const run = helm(args)
    assert.equal(run.code, 0, `helm ${args.join(' ')}\n${run.stdout}${run.stderr}`)
    return run.stdout
  }
  /** The object on the server, or undefined when it does not exist (any other kubectl failure throws). */
  const live = async (ref: Ref): Promise<Doc | undefined> => {
    const args = ['get', resource(ref), ref.name, '-o', 'json']
    const run = await cp().kubectl(ref.namespace ? [...args, '-n', ref.namespace] : args)
    if (run.code === 0) return JSON.parse(run.stdout) as Doc
    assert.match(run.stderr, /NotFound/, `${show(ref)}: ${run.stderr}`)
    return undefined
  }
  const manifest = (release: string, namespace: string, revision: number) =>
    parse(
      helmOk(['get', 'manifest', release, '-n', namespace, '--revision', String(revision)]),
    ).map(refOf)

  test('classic: install, upgrade (replicas, opt-in label, heal CronJob on, PDB off; then a new image), uninstall leaves nothing', {
    timeout: SLOW,
  }, async () => {
    const namespace = await cp().namespace('chart')
    const release = `irsa-chart-${randomBytes(3).toString('hex')}`
    const base = ['mode', 'classic', ...IMAGE, 'namespaceSelector.matchExpressions', [SCOPE]]

    // Install: every object of the manifest exists, as rendered.
    helmOk(['install', release, CHART, '-n', namespace, ...setArgs(base)])
    const first = manifest(release, namespace, 1)
    assert.deepEqual(first.map((ref) => ref.kind).sort(), [
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRoleBinding',
      'CronJob',
      'Deployment',
      'Job',
      'MutatingWebhookConfiguration',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ServiceAccount',
    ])
    for (const ref of first) assert.ok(await live(ref), `${show(ref)} was created`)
    const deployment = {
      kind: 'Deployment',
      apiVersion: 'apps/v1',
      name: 'irsa-webhook',
      namespace,
    }
    const webhook = {
      kind: 'MutatingWebhookConfiguration',
      apiVersion: 'admissionregistration.k8s.io/v1',
      name: release,
      namespace: undefined,
    }
    assert.equal(get(await live(deployment), 'spec.replicas'), 2)
    const hook = list(await live(webhook), 'webhooks')[0]
    assert.equal(get(hook, 'failurePolicy'), 'Fail')
    assert.equal(get(hook, 'clientConfig.service.namespace'), namespace)
    assert.deepEqual(list(hook, 'namespaceSelector.matchExpressions').at(-1), SCOPE)
    assert.ok(!JSON.stringify(get(hook, 'objectSelector')).includes(LABELS.optIn))
    // The controller-manager acts on what Helm made: the Deployment's ReplicaSet and (Pending) pods.
    const podsOf = async (selector: string) =>
      JSON.parse(
        await cp().kubectlOk(['get', 'pods', '-n', namespace, '-l', selector, '-o', 'json']),
      ).items.length as number
    await poll(
      async () => ((await podsOf('app=irsa-webhook')) === 2 ? true : undefined),
      'the two pods of the Deployment',
      30_000,
    )
    await poll(
      async () =>
        (await podsOf('app.kubernetes.io/name=irsa-webhook-certs')) === 1 ? true : undefined,
      "the certificate Job's pod",
      30_000,
    )

    // The caBundle the certificate Job (or generate-certs.sh) patches in is not the chart's: an upgrade keeps it.
    const caBundle = Buffer.from(
      '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    ).toString('base64')
    await cp().kubectlOk([
      'patch',
      'mutatingwebhookconfiguration',
      release,
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: caBundle }]),
    ])

    // Upgrade with changed values: the server has the new ones; an object the new values drop is deleted.
    helmOk([
      'upgrade',
      release,
      CHART,
      '-n',
      namespace,
      '--reuse-values',
      ...setArgs([
        'classic.replicas',
        3,
        'optInLabel',
        true,
        'auditCronJob.enabled',
        true,
        'classic.podDisruptionBudget.enabled',
        false,
      ]),
    ])
    assert.match(helmOk(['status', release, '-n', namespace]), /REVISION: 2/)
    assert.equal(get(await live(deployment), 'spec.replicas'), 3)
    const upgraded = list(await live(webhook), 'webhooks')[0]
    assert.deepEqual(list(upgraded, 'objectSelector.matchExpressions').at(-1), {
      key: LABELS.optIn,
      operator: 'In',
      values: ['true'],
    })
    assert.deepEqual(
      list(upgraded, 'namespaceSelector.matchExpressions').at(-1),
      SCOPE,
      'values reused',
    )
    assert.equal(
      get(upgraded, 'clientConfig.caBundle'),
      caBundle,
      'the patched caBundle survives the upgrade',
    )
    const cron = await live({
      kind: 'CronJob',
      apiVersion: 'batch/v1',
      name: 'irsa-webhook-audit',
      namespace,
    })
    const command = list<string>(
      get(cron, 'spec.jobTemplate.spec.template.spec.containers.0'),
      'command',
    )
    assert.deepEqual(
      command.slice(-2),
      ['--configuration', release],
      "the audit reads this release's webhook",
    )
    const pdb = {
      kind: 'PodDisruptionBudget',
      apiVersion: 'policy/v1',
      name: 'irsa-webhook',
      namespace,
    }
    assert.equal(
      await live(pdb),
      undefined,
      'the PodDisruptionBudget the new values drop is deleted',
    )
    const second = manifest(release, namespace, 2)
    for (const ref of second) assert.ok(await live(ref), `${show(ref)} exists after the upgrade`)
    const jobOf = (refs: Ref[]) => refs.find((ref) => ref.kind === 'Job') as Ref
    assert.equal(
      jobOf(second).name,
      jobOf(first).name,
      'the same certificate Job: its template did not change',
    )

    // A new image: the certificate Job's template changes, so a new Job replaces it (a Job's template is immutable).
    helmOk([
      'upgrade',
      release,
      CHART,
      '-n',
      namespace,
      '--reuse-values',
      ...setArgs(['image.digest', `sha256:${'cd'.repeat(32)}`]),
    ])
    const third = manifest(release, namespace, 3)
    assert.notEqual(jobOf(third).name, jobOf(second).name)
    assert.ok(await live(jobOf(third)), 'the new certificate Job')
    assert.equal(await live(jobOf(second)), undefined, 'the old certificate Job is deleted')
    const image = get(await live(deployment), 'spec.template.spec.containers.0.image')
    assert.equal(image, `ghcr.io/owner/irsa-webhook@sha256:${'cd'.repeat(32)}`)

    // Uninstall: every object either revision made is gone, and so is what the controllers made from them.
    const made = [...first, ...second, ...third].filter(
      (ref, at, all) => all.findIndex((other) => show(other) === show(ref)) === at,
    )
    assert.ok(
      made.some((ref) => ref.kind === 'CronJob') &&
        made.some((ref) => ref.kind === 'PodDisruptionBudget'),
    )
    helmOk(['uninstall', release, '-n', namespace])
    for (const ref of made) assert.equal(await live(ref), undefined, `${show(ref)} is left behind`)
    assert.equal(helmOk(['list', '-n', namespace, '-q']).trim(), '', 'no release listed')
    const records = await cp().kubectlOk([
      'get',
      'secrets',
      '-n',
      namespace,
      '-l',
      'owner=helm',
      '-o',
      'name',
    ])
    assert.equal(records.trim(), '', "no release record (Helm's storage Secrets) left")
    await poll(
      async () => {
        const left = await cp().kubectlOk([
          'get',
          'deployments,replicasets,pods,services,poddisruptionbudgets,cronjobs,jobs,secrets,configmaps,serviceaccounts,roles,rolebindings',
          '-n',
          namespace,
          '-o',
          'name',
        ])
        // What every namespace has, made by the controller-manager, not by the chart.
        const rest = left
          .split('\n')
          .filter(
            (line) =>
              line && !['serviceaccount/default', 'configmap/kube-root-ca.crt'].includes(line),
          )
        return rest.length === 0 ? true : undefined
      },
      `namespace ${namespace} empty but for its default ServiceAccount and kube-root-ca.crt`,
      60_000,
    )
    const clusterScoped = await cp().kubectlOk([
      'get',
      'mutatingwebhookconfigurations,clusterroles,clusterrolebindings',
      '-o',
      'name',
    ])
    assert.ok(
      !clusterScoped.includes(release),
      `no cluster-scoped object of ${release} left:\n${clusterScoped}`,
    )
  })

  test('the API server accepts what the chart renders with every value set (kubectl apply --dry-run=server)', {
    timeout: SLOW,
  }, async () => {
    const namespace = await cp().namespace('chart-dry-run')
    const values = [
      'mode',
      'classic',
      ...IMAGE,
      'namespaceSelector.matchExpressions',
      [SCOPE],
      'auditCronJob.enabled',
      true,
      'nodeSelector',
      { 'kubernetes.io/os': 'linux' },
      'tolerations',
      [{ key: 'dedicated', operator: 'Equal', value: 'system', effect: 'NoSchedule' }],
      'affinity',
      {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'pool', operator: 'In', values: ['system'] }] },
            ],
          },
        },
      },
      'priorityClassName',
      'system-cluster-critical',
      'podAnnotations',
      { 'example.com/team': 'platform' },
      'classic.replicas',
      3,
      'classic.podDisruptionBudget.minAvailable',
      2,
    ]
    const rendered = helmOk([
      'template',
      `irsa-dry-${randomBytes(3).toString('hex')}`,
      CHART,
      '-n',
      namespace,
      ...setArgs(values),
    ])
    const out = await cp().kubectlOk(['apply', '--dry-run=server', '-f', '-'], { input: rendered })
    assert.equal(out.trim().split('\n').length, parse(rendered).length, out)
    assert.match(out, /deployment\.apps\/irsa-webhook created \(server dry run\)/)
  })

  test('knative mode (the Knative Serving CRDs of the pinned release): install, upgrade (warm, max scale, opt-in label), uninstall leaves nothing', {
    timeout: SLOW,
  }, async () => {
    await installCrds(cp(), (await pinnedCrds()).knative)
    const namespace = await cp().namespace('chart-knative')
    const gateway = await cp().namespace('chart-gateway')
    const release = `irsa-knative-${randomBytes(3).toString('hex')}`
    const base = [
      ...IMAGE,
      'namespaceSelector.matchExpressions',
      [SCOPE],
      'knative.gatewayNamespace',
      gateway,
    ]
    helmOk(['install', release, CHART, '-n', namespace, ...setArgs(base)])
    const first = manifest(release, namespace, 1)
    for (const ref of first) assert.ok(await live(ref), `${show(ref)} was created`)
    const ksvc = {
      kind: 'Service',
      apiVersion: 'serving.knative.dev/v1',
      name: 'irsa-webhook',
      namespace,
    }
    const alias = { kind: 'Service', apiVersion: 'v1', name: 'irsa-webhook', namespace: gateway }
    assert.ok(await live(alias), 'the gateway alias Service, in the gateway namespace')
    const scale = async () =>
      get(await live(ksvc), 'spec.template.metadata.annotations') as Record<string, string>
    assert.equal((await scale())['autoscaling.knative.dev/min-scale'], '0')
    assert.ok(
      first.some((ref) => ref.kind === 'CronJob'),
      'the heal CronJob at scale zero',
    )

    helmOk([
      'upgrade',
      release,
      CHART,
      '-n',
      namespace,
      '--reuse-values',
      ...setArgs(['knative.minScale', 1, 'knative.maxScale', 5, 'optInLabel', true]),
    ])
    const annotations = await scale()
    assert.deepEqual(
      [
        annotations['autoscaling.knative.dev/min-scale'],
        annotations['autoscaling.knative.dev/max-scale'],
      ],
      ['1', '5'],
    )
    const hook = list(
      await live({
        kind: 'MutatingWebhookConfiguration',
        apiVersion: 'admissionregistration.k8s.io/v1',
        name: release,
        namespace: undefined,
      }),
      'webhooks',
    )[0]
    assert.equal(get(hook, 'failurePolicy'), 'Fail')
    const cron = { kind: 'CronJob', apiVersion: 'batch/v1', name: 'irsa-webhook-audit', namespace }
    assert.equal(await live(cron), undefined, 'no heal CronJob once nothing can be let through')

    helmOk(['uninstall', release, '-n', namespace])
    for (const ref of first) assert.equal(await live(ref), undefined, `${show(ref)} is left behind`)
  })

  test("certificates.source=cert-manager (cert-manager's CRDs): the CA chain and the inject annotation, no certificate Job; uninstall removes them", {
    timeout: SLOW,
  }, async () => {
    await installCrds(cp(), (await pinnedCrds()).certManager)
    const namespace = await cp().namespace('chart-cert-manager')
    const release = `irsa-cm-${randomBytes(3).toString('hex')}`
    const values = [
      'mode',
      'classic',
      'certificates.source',
      'cert-manager',
      ...IMAGE,
      'namespaceSelector.matchExpressions',
      [SCOPE],
    ]
    helmOk(['install', release, CHART, '-n', namespace, ...setArgs(values)])
    const made = manifest(release, namespace, 1)
    assert.deepEqual(
      made
        .filter((ref) => ref.apiVersion === 'cert-manager.io/v1')
        .map((ref) => `${ref.kind}/${ref.name}`)
        .sort(),
      [
        'Certificate/irsa-webhook',
        'Certificate/irsa-webhook-ca',
        'Issuer/irsa-webhook-ca',
        'Issuer/irsa-webhook-selfsigned',
      ],
    )
    assert.ok(
      !made.some((ref) => ref.name.startsWith('irsa-webhook-certs')),
      'no certificate Job, CronJob or RBAC',
    )
    for (const ref of made) assert.ok(await live(ref), `${show(ref)} was created`)
    const certificate = await live({
      kind: 'Certificate',
      apiVersion: 'cert-manager.io/v1',
      name: 'irsa-webhook',
      namespace,
    })
    assert.deepEqual(get(certificate, 'spec.dnsNames'), [
      `irsa-webhook.${namespace}.svc`,
      `irsa-webhook.${namespace}.svc.cluster.local`,
    ])
    const webhook = await live({
      kind: 'MutatingWebhookConfiguration',
      apiVersion: 'admissionregistration.k8s.io/v1',
      name: release,
      namespace: undefined,
    })
    assert.equal(
      (get(webhook, 'metadata.annotations') as Record<string, string>)[
        'cert-manager.io/inject-ca-from'
      ],
      `${namespace}/irsa-webhook`,
    )
    helmOk(['uninstall', release, '-n', namespace])
    for (const ref of made) assert.equal(await live(ref), undefined, `${show(ref)} is left behind`)
  })
})
