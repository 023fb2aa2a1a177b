/**
 * Policy mode equals the webhook, pod for pod, on the real kube-apiserver (issue 16).
 *
 * Every mutation case (test/fixtures/cases/*.json, the pod shapes of the webhook's admission tests) is created twice
 * with kubectl: once in a namespace served by the webhook as it runs in production (test/support/cluster-webhook.ts;
 * no policy binds there), once in a twin namespace served by the shipped policies (deploy/policy, rendered by
 * kustomize; no webhook is registered for it). The two stored pods must be equal after normalising only what differs
 * between any two stored objects (cluster-pods.ts `normalise`: uid, names generated, timestamps, resourceVersion,
 * the `kube-api-access-*` suffix, the namespace). Denials compare by their message, warnings by their text, with
 * the namespace name replaced (the webhook's messages name the ServiceAccount as namespace/name).
 *
 * The shipped policies are changed the way cluster-webhook.ts `forTest` changes the shipped webhook configuration,
 * and nothing else: each object's name gets the test's scope as a prefix and each binding gets a namespaceSelector on
 * `irsa-test/policy=<scope>`, so the policies of this file never touch another test's pods on the shared control
 * plane. A case with webhook config (`env`) runs against a webhook with that env and a policy generated from the
 * same env (scripts/policy.ts `settingsFor`).
 *
 * The API server's ServiceAccount informer is eventually consistent (docs/policy.md): after the case's
 * ServiceAccount is created, a second one with a role is created and a dry-run pod of it polled until mutated; the
 * informer delivers ServiceAccount events in order, so the case's ServiceAccount is then in the cache too.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ANNOTATIONS, ENV } from '../../function/names.ts'
import { POLICY_NAMES, policyObjects, settingsFor } from '../../scripts/policy.ts'
import {
  type CaseOutcome,
  caseConfigs,
  createPod,
  type FixtureCase,
  forCluster,
  type Json,
  normalise,
  storedPod,
} from '../support/cluster-pods.ts'
import {
  asList,
  namesOf,
  POLICY_SCOPE_LABEL,
  plainPod,
  TEST_ROLE as ROLE,
  scopedPolicy,
  untilParamsSeen,
} from '../support/cluster-policy.ts'
import { type ClusterWebhook, startClusterWebhook } from '../support/cluster-webhook.ts'
import { controlPlane, usable } from '../support/control-plane.ts'
import { listFixtures, loadJson } from '../support/fixtures.ts'
import { type Doc, parse, render } from '../support/manifests.ts'
import { poll, ROOT } from '../support/process.ts'

const cluster = await controlPlane()

/** The denial's own message: after the webhook's or the policy's prefix in kubectl's error line. */
function denial(outcome: CaseOutcome, namespace: string): string {
  const line = outcome.stderr.trim()
  const message =
    /denied the request: (.*)$/s.exec(line)?.[1] ?? /denied request: (.*)$/s.exec(line)?.[1] ?? line
  return message.replaceAll(namespace, '<namespace>')
}

/** The policy's warnings without the API server's prefix (it names the policy and binding). */
const POLICY_WARNING =
  /^Validation failed for ValidatingAdmissionPolicy '[^']+' with binding '[^']+': /
const warningsOf = (outcome: CaseOutcome, namespace: string) =>
  outcome.warnings.map((w) => w.replace(POLICY_WARNING, '').replaceAll(namespace, '<namespace>'))

const files = listFixtures('cases/', /\.json$/)

describe('policy mode on a real kube-apiserver equals the webhook, pod for pod', {
  skip: cluster.skip,
}, () => {
  /** Per distinct webhook config in the cases: its webhook and its policy's scope. */
  const variants = new Map<string, { webhook: ClusterWebhook; scope: string; objects: Doc[] }>()
  const variantFor = (env: Record<string, string> = {}) => {
    const variant = variants.get(JSON.stringify(env))
    if (variant === undefined) throw new Error(`no variant for ${JSON.stringify(env)}`)
    return variant
  }

  before(async () => {
    const cp = usable(cluster)
    const configs = caseConfigs(files.map((file) => loadJson(`cases/${file}`) as FixtureCase))
    let index = 0
    for (const [key, env] of configs) {
      const scope = `diff-${index++}`
      // The default config runs the shipped policy (deploy/policy); others one generated from the case's env.
      const shipped = Object.keys(env).length === 0
      const objects = scopedPolicy(
        shipped ? render('deploy/policy') : policyObjects({ settings: settingsFor(env) }),
        scope,
      )
      await cp.kubectlOk(['apply', '-f', '-'], { input: asList(objects) })
      const webhook = await startClusterWebhook(cp, { scope: `policy-${scope}`, env })
      variants.set(key, { webhook, scope, objects })
    }
  })

  after(async () => {
    const cp = usable(cluster)
    for (const { webhook, objects } of variants.values()) {
      await webhook.close()
      await cp.kubectl(['delete', '--ignore-not-found', ...namesOf(objects)])
    }
  })

  for (const file of files) {
    const fixture = loadJson(`cases/${file}`) as FixtureCase
    it(`${file}: ${fixture.description}`, async () => {
      const cp = usable(cluster)
      const { webhook, scope } = variantFor(fixture.env)
      const podCase = forCluster(fixture)
      // Names of one length: a warning is cut to 120 characters after the namespace is written into it.
      const webhookNs = await cp.namespace('diff-w', webhook.namespaceLabels)
      const policyNs = await cp.namespace('diff-p', { [POLICY_SCOPE_LABEL]: scope })
      const viaWebhook = await createPod(cp, webhookNs, podCase)
      if (podCase.serviceAccount !== undefined)
        await cp.kubectlOk(['apply', '-f', '-'], {
          input: JSON.stringify({
            ...podCase.serviceAccount,
            metadata: { ...podCase.serviceAccount['metadata'], namespace: policyNs },
          }),
        })
      await untilParamsSeen(cp, policyNs)
      const viaPolicy = await createPod(cp, policyNs, { pod: podCase.pod })

      assert.equal(
        viaPolicy.code,
        viaWebhook.code,
        `admitted alike (webhook: ${viaWebhook.stderr}; policy: ${viaPolicy.stderr})`,
      )
      if (viaWebhook.code !== 0) {
        assert.equal(denial(viaPolicy, policyNs), denial(viaWebhook, webhookNs))
        return
      }
      assert.deepEqual(warningsOf(viaPolicy, policyNs), warningsOf(viaWebhook, webhookNs))
      assert.deepEqual(
        normalise(await storedPod(cp, policyNs, viaPolicy.name)),
        normalise(await storedPod(cp, webhookNs, viaWebhook.name)),
      )
    })
  }
})

describe('policy mode faults on a real kube-apiserver', { skip: cluster.skip }, () => {
  it('malformed annotations on one ServiceAccount never reject a pod of another', async () => {
    const cp = usable(cluster)
    const scope = 'faults'
    const objects = scopedPolicy(render('deploy/policy'), scope)
    await cp.kubectlOk(['apply', '-f', '-'], { input: asList(objects) })
    try {
      const namespace = await cp.namespace('policy-faults', { [POLICY_SCOPE_LABEL]: scope })
      const broken = {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: 'broken',
          namespace,
          annotations: {
            [ANNOTATIONS.role]: '',
            [ANNOTATIONS.tokenExpiration]: 'soon',
            [ANNOTATIONS.stsEndpoint]: '::',
            [ANNOTATIONS.region]: 'Not A Region',
          },
        },
      }
      await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(broken) })
      await untilParamsSeen(cp, namespace)
      const pod = (serviceAccountName: string) => ({
        pod: plainPod(`pod-of-${serviceAccountName}`, serviceAccountName),
      })
      const unrelated = await createPod(cp, namespace, pod('default'))
      assert.equal(unrelated.code, 0, unrelated.stderr)
      assert.deepEqual(unrelated.warnings, [])
      assert.ok(!unrelated.stdout.includes(ENV.roleArn))
      // Its own pod gets the webhook's outcome for an empty role: the denial, not a CEL error.
      const own = await createPod(cp, namespace, pod('broken'))
      assert.notEqual(own.code, 0)
      assert.match(
        own.stderr,
        /annotation api\.vultr\.com\/role has invalid value "": expected a role UUID/,
      )
    } finally {
      await cp.kubectl(['delete', '--ignore-not-found', ...namesOf(objects)])
    }
  })

  it('a CEL runtime error rejects the pods of ServiceAccounts with a role (failurePolicy Fail), and only those', async () => {
    const cp = usable(cluster)
    const scope = 'cel-error'
    // A variable that fails at run time (int() of a non-number), read first by the mutation.
    const objects = scopedPolicy(
      policyObjects({ faultExpression: 'int(params.metadata.name) == 0' }),
      scope,
    ).filter((doc) => String(doc['kind']).startsWith('MutatingAdmission'))
    await cp.kubectlOk(['apply', '-f', '-'], { input: asList(objects) })
    try {
      const namespace = await cp.namespace('policy-cel-error', { [POLICY_SCOPE_LABEL]: scope })
      await cp.kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name: 'app', namespace, annotations: { [ANNOTATIONS.role]: ROLE } },
        }),
      })
      await poll(
        async () => {
          const result = await createPod(cp, namespace, { pod: plainPod('with-role', 'app') }, [
            '--dry-run=server',
          ])
          return result.code !== 0 ? result : undefined
        },
        'the erroring policy to reject a pod whose ServiceAccount has a role',
        30_000,
      ).then((rejected) => {
        const name = `${scope}-${POLICY_NAMES.mutating}`
        assert.match(
          rejected.stderr,
          new RegExp(
            `policy '${name}' with binding '${name}' denied request: expression .* resulted in error: composited variable "fault" fails to evaluate: type conversion error`,
            's',
          ),
        )
      })
      const other = await createPod(cp, namespace, { pod: plainPod('without-role', 'default') })
      assert.equal(other.code, 0, other.stderr)
    } finally {
      await cp.kubectl(['delete', '--ignore-not-found', ...namesOf(objects)])
    }
  })

  it('the release bundle installs with kubectl apply -f and a pod gets its identity, no webhook running', async () => {
    const cp = usable(cluster)
    const out = mkdtempSync(join(tmpdir(), 'irsa-policy-bundle-'))
    try {
      execFileSync(
        process.execPath,
        [
          'scripts/release-manifests.ts',
          '--image',
          `ghcr.io/owner/irsa-webhook@sha256:${'0'.repeat(64)}`,
          '--out',
          out,
        ],
        { cwd: ROOT, stdio: 'pipe' },
      )
      const scope = 'bundle'
      const bundle = scopedPolicy(
        parse(readFileSync(join(out, 'irsa-webhook-policy.yaml'), 'utf8')),
        scope,
      )
      const file = join(out, 'scoped.json')
      writeFileSync(file, asList(bundle))
      await cp.kubectlOk(['apply', '-f', file])
      try {
        const namespace = await cp.namespace('policy-bundle', { [POLICY_SCOPE_LABEL]: scope })
        await cp.kubectlOk(['apply', '-f', '-'], {
          input: JSON.stringify({
            apiVersion: 'v1',
            kind: 'ServiceAccount',
            metadata: { name: 'app', namespace, annotations: { [ANNOTATIONS.role]: ROLE } },
          }),
        })
        await untilParamsSeen(cp, namespace)
        const created = await createPod(cp, namespace, { pod: plainPod('app', 'app') })
        assert.equal(created.code, 0, created.stderr)
        const stored = await storedPod(cp, namespace, created.name)
        const env = stored['spec']['containers'][0]['env'] as { name: string; value: string }[]
        assert.deepEqual(
          env.find((e) => e.name === ENV.roleArn),
          { name: ENV.roleArn, value: ROLE },
        )
        assert.ok(
          (stored['spec']['volumes'] as Json[]).some((v) => v['name'] === 'vultr-irsa-token'),
        )
      } finally {
        await cp.kubectl(['delete', '--ignore-not-found', '-f', file])
      }
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })
})
