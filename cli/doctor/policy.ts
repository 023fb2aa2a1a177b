/**
 * Doctor checks for policy mode (deploy/policy, docs/policy.md): the API server serves admission policies v1
 * (Kubernetes ≥ 1.36), and the MutatingAdmissionPolicy, the two ValidatingAdmissionPolicies and their bindings exist
 * as shipped. The dry-run pod (pod.ts) then shows that the API server applies them.
 * @module
 */
import { policyNames } from '../../function/names.ts'
import type { KubeClient } from '../shared/kube.ts'
import { getObject } from '../shared/kube.ts'
import { type CheckResult, fail, pass, warn } from './context.ts'

const GROUP_PATH = '/apis/admissionregistration.k8s.io/v1'
const INSTALL = 'kubectl apply -f irsa-webhook-policy.yaml (or kubectl apply -k deploy/policy/)'

export interface PolicyContext {
  readonly client: KubeClient
  /** The MutatingAdmissionPolicy's name; the others are derived (policyNames). */
  readonly policyName: string
}

type Json = Record<string, unknown>
const spec = (object: Json) => (object['spec'] ?? {}) as Json

/** The v1 admission policy resources the API server serves (empty when the group version is not served). */
async function servedResources(client: KubeClient): Promise<string[] | { error: string }> {
  try {
    const response = await client.get(GROUP_PATH)
    if (response.status === 404) return []
    if (response.status !== 200) return { error: `GET ${GROUP_PATH}: HTTP ${response.status}` }
    const resources = ((response.body as Json)['resources'] ?? []) as { name?: string }[]
    return resources.map((resource) => String(resource.name))
  } catch (error) {
    return { error: `GET ${GROUP_PATH}: ${error instanceof Error ? error.message : error}` }
  }
}

/** True when the API server serves MutatingAdmissionPolicy v1 (what `doctor` uses to recognise policy mode). */
export async function servesPolicies(client: KubeClient): Promise<boolean> {
  const served = await servedResources(client)
  return Array.isArray(served) && served.includes('mutatingadmissionpolicies')
}

/** MutatingAdmissionPolicy and ValidatingAdmissionPolicy v1 are served. */
export async function checkPolicyApi(context: PolicyContext): Promise<CheckResult> {
  const title = 'admission policies v1'
  const served = await servedResources(context.client)
  if (!Array.isArray(served)) return fail(title, served.error, 'check your kubeconfig and access')
  const missing = ['mutatingadmissionpolicies', 'validatingadmissionpolicies'].filter(
    (name) => !served.includes(name),
  )
  if (missing.length === 0)
    return pass(title, `${GROUP_PATH} serves MutatingAdmissionPolicy and ValidatingAdmissionPolicy`)
  return fail(
    title,
    `${GROUP_PATH} does not serve ${missing.join(', ')}: policy mode needs Kubernetes 1.36 or later`,
    'upgrade the cluster, or install the webhook instead (classic or Knative: README, "Deploying")',
  )
}

async function read(context: PolicyContext, resource: string, name: string) {
  return getObject(context, `${GROUP_PATH}/${resource}/${encodeURIComponent(name)}`)
}

function bindingProblems(binding: Json, policy: string, action?: string): string[] {
  const problems: string[] = []
  const bound = spec(binding)
  if (bound['policyName'] !== policy) problems.push(`policyName is ${String(bound['policyName'])}`)
  const paramRef = (bound['paramRef'] ?? {}) as Json
  if (paramRef['selector'] === undefined || paramRef['namespace'] !== undefined)
    problems.push(
      "paramRef must select ServiceAccounts of the pod's namespace (selector, no namespace)",
    )
  if (paramRef['parameterNotFoundAction'] !== 'Allow')
    problems.push('paramRef.parameterNotFoundAction is not Allow')
  if (action !== undefined && !((bound['validationActions'] ?? []) as string[]).includes(action))
    problems.push(`validationActions lacks ${action}`)
  return problems
}

/** One policy and its binding: both exist and are wired as shipped. */
async function checkPair(
  context: PolicyContext,
  kind: 'MutatingAdmissionPolicy' | 'ValidatingAdmissionPolicy',
  name: string,
  action: string | undefined,
  policyProblems: (policy: Json) => string[],
): Promise<CheckResult> {
  const title = `${kind} ${name}`
  const resource = kind.toLowerCase().replace(/y$/, 'ies')
  const policy = await read(context, resource, name)
  if ('error' in policy) return fail(title, `cannot read it: ${policy.error}`, 'check your access')
  if ('missing' in policy) return fail(title, 'not found', INSTALL)
  const binding = await read(context, resource.replace(/ies$/, 'ybindings'), name)
  if ('error' in binding)
    return fail(title, `cannot read its binding: ${binding.error}`, 'check your access')
  if ('missing' in binding) return fail(title, `its binding ${name} is not found`, INSTALL)
  const problems = [
    ...policyProblems(policy.found),
    ...bindingProblems(binding.found, name, action),
  ]
  if (problems.length > 0) return fail(title, problems.join('; '), `re-apply it: ${INSTALL}`)
  return pass(title, `and its binding${action ? ` (${action})` : ''}, as shipped`)
}

function paramKindProblems(policy: Json): string[] {
  const paramKind = (spec(policy)['paramKind'] ?? {}) as Json
  return paramKind['kind'] === 'ServiceAccount' && paramKind['apiVersion'] === 'v1'
    ? []
    : ['paramKind is not v1 ServiceAccount']
}

/** The three policies and their bindings. */
export async function checkPolicyObjects(context: PolicyContext): Promise<CheckResult[]> {
  const names = policyNames(context.policyName)
  const mutating = await checkPair(
    context,
    'MutatingAdmissionPolicy',
    names.mutating,
    undefined,
    (policy) => [
      ...paramKindProblems(policy),
      ...(spec(policy)['reinvocationPolicy'] === 'IfNeeded'
        ? []
        : [
            'reinvocationPolicy is not IfNeeded (containers added by later webhooks get no credentials)',
          ]),
    ],
  )
  const warnings = await checkPair(
    context,
    'ValidatingAdmissionPolicy',
    names.warnings,
    'Warn',
    paramKindProblems,
  )
  let deny = await checkPair(
    context,
    'ValidatingAdmissionPolicy',
    names.deny,
    'Deny',
    paramKindProblems,
  )
  if (deny.status === 'fail' && /not found/.test(deny.detail) && !/binding/.test(deny.detail)) {
    deny = warn(
      deny.name,
      'not found: pods of a ServiceAccount with an invalid role are admitted without credentials (as INVALID_ROLE_POLICY=warn)',
      `if that is not what you chose: ${INSTALL}`,
    )
  }
  return [mutating, warnings, deny]
}
