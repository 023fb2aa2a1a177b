/**
 * Policy mode (deploy/policy, scripts/policy.ts) on the real control plane (test/support/control-plane.ts): the
 * policy objects scoped to one test's namespaces, and the wait for the API server's ServiceAccount cache. Shared by
 * test/cluster/policy-differential.test.ts and `npm run bench:policy`.
 * @module
 */
import { ANNOTATIONS, ENV, LABELS } from '../../function/names.ts'
import type { ControlPlane } from './control-plane.ts'
import { type Doc, get } from './manifests.ts'
import { poll } from './process.ts'

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects as JSON
type Json = Record<string, any>

/** The namespace label a test's policy bindings select (the policy's twin of cluster-webhook.ts SCOPE_LABEL). */
export const POLICY_SCOPE_LABEL = 'irsa-test/policy'
export const TEST_ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const BINDINGS = ['MutatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicyBinding']

/**
 * The shipped (or generated) policy objects with exactly two changes, as cluster-webhook.ts `forTest` changes the
 * shipped webhook configuration: every name gets the prefix `<scope>-` (so `policyNames('<scope>-irsa-webhook')` names them), and every binding selects only namespaces labelled
 * POLICY_SCOPE_LABEL=scope, so policies of different tests sharing one control plane never see each other's pods.
 */
export function scopedPolicy(docs: readonly Doc[], scope: string): Doc[] {
  return docs.map((doc) => {
    const copy = structuredClone(doc) as Json
    copy['metadata']['name'] = `${scope}-${copy['metadata']['name']}`
    if (BINDINGS.includes(copy['kind'])) {
      copy['spec']['policyName'] = `${scope}-${copy['spec']['policyName']}`
      copy['spec']['matchResources'] = {
        ...(copy['spec']['matchResources'] ?? {}),
        namespaceSelector: { matchLabels: { [POLICY_SCOPE_LABEL]: scope } },
      }
    }
    return copy
  })
}

/** Objects as a List, for `kubectl apply -f -`. */
export const asList = (items: readonly Doc[]): string =>
  JSON.stringify({ apiVersion: 'v1', kind: 'List', items })

/** `kind/name` of each object, for `kubectl delete`. */
export const namesOf = (docs: readonly Doc[]): string[] =>
  docs.map((doc) => `${String(doc['kind']).toLowerCase()}/${String(get(doc, 'metadata.name'))}`)

/** A bare pod of `serviceAccountName` (one busybox container). */
export function plainPod(name: string, serviceAccountName: string, labels: Json = {}): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: { serviceAccountName, containers: [{ name: 'app', image: 'busybox' }] },
  }
}

/**
 * Waits until the API server's ServiceAccount cache, which the policies read their parameters from, holds every
 * ServiceAccount created so far in `namespace`: one more with a role is created and a dry-run pod of it polled until
 * mutated (the cache receives ServiceAccount events in order), then deleted.
 */
export async function untilParamsSeen(cp: ControlPlane, namespace: string): Promise<void> {
  const name = `sync-${Math.random().toString(36).slice(2, 8)}`
  await cp.kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      // Labelled too, for the policy-labelled-service-accounts component.
      metadata: {
        name,
        namespace,
        labels: { [LABELS.optIn]: 'true' },
        annotations: { [ANNOTATIONS.role]: TEST_ROLE },
      },
    }),
  })
  const pod = plainPod(name, name, { [LABELS.optIn]: 'true' })
  pod['metadata']['namespace'] = namespace
  await poll(
    async () => {
      const result = await cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
        input: JSON.stringify(pod),
      })
      return result.code === 0 && result.stdout.includes(ENV.roleArn) ? true : undefined
    },
    `the policy to see ServiceAccount ${namespace}/${name}`,
    30_000,
  )
  await cp.kubectlOk(['delete', 'serviceaccount', name, '-n', namespace])
}
