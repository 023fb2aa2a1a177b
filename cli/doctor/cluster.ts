/**
 * Doctor checks against the cluster's behaviour: RBAC of the webhook's ServiceAccount, namespace exclusions,
 * a dry-run pod that must come back mutated, and OIDC discovery.
 * @module
 */

import { getObject } from '../shared/kube.ts'
import { fetchOidcDocuments, OidcReadError } from '../shared/oidc.ts'
import { selectsNamespace } from '../shared/selector.ts'
import { type CheckResult, type DoctorContext, fail, pass, skip, warn } from './context.ts'
import { gatewayNamespace } from './knative.ts'

async function canI(context: DoctorContext, verb: string): Promise<boolean | string> {
  const { namespace, name } = context.identity
  const review = {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: `system:serviceaccount:${namespace}:${name}`,
      groups: [
        'system:serviceaccounts',
        `system:serviceaccounts:${namespace}`,
        'system:authenticated',
      ],
      resourceAttributes: { verb, group: '', resource: 'serviceaccounts' },
    },
  }
  try {
    const response = await context.client.request(
      'POST',
      '/apis/authorization.k8s.io/v1/subjectaccessreviews',
      review,
    )
    const status = (response.body as { status?: { allowed?: boolean } } | undefined)?.status
    if (response.status === 201 || response.status === 200) return status?.allowed === true
    return `SubjectAccessReview → HTTP ${response.status}`
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  }
}

/** The webhook's ServiceAccount can get (and, for SA_LOOKUP_MODE=watch, list and watch) ServiceAccounts. */
export async function checkRbac(context: DoctorContext): Promise<CheckResult> {
  const { namespace, name } = context.identity
  const title = `RBAC: ${namespace}/${name} can get serviceaccounts`
  const [get, list, watch] = await Promise.all(
    ['get', 'list', 'watch'].map((verb) => canI(context, verb)),
  )
  const manual = `kubectl auth can-i get serviceaccounts -A --as=system:serviceaccount:${namespace}:${name}`
  if (typeof get === 'string') return fail(title, `cannot ask the API server: ${get}`, manual)
  const fix = 'kubectl apply -k deploy/rbac (ClusterRole irsa-webhook-sa-reader and its binding)'
  if (!get)
    return fail(
      title,
      'denied: every lookup fails and pods are admitted unmutated (or rejected)',
      fix,
    )
  if (list !== true || watch !== true) {
    return warn(title, 'get allowed; list/watch denied (needed only for SA_LOOKUP_MODE=watch)', fix)
  }
  return pass(title, 'get, list and watch allowed')
}

async function namespaceLabels(
  context: DoctorContext,
  namespace: string,
): Promise<Record<string, string>> {
  const got = await getObject(context, `/api/v1/namespaces/${namespace}`)
  return 'found' in got
    ? ((got.found['metadata'] as { labels?: Record<string, string> })?.labels ?? {})
    : {}
}

/** Namespaces that must never wait for the webhook: its own, kube-system, and for Knative the serving stack. */
function protectedNamespaces(context: DoctorContext): string[] {
  const names = [context.namespace, 'kube-system']
  if (context.mode === 'knative') names.push('knative-serving', gatewayNamespace(context))
  return [...new Set(names)]
}

/** The namespaceSelector excludes the protected namespaces (no deadlock when the webhook itself restarts). */
export async function checkExclusions(context: DoctorContext): Promise<CheckResult> {
  const title = 'exclusions'
  const selector = context.webhook?.namespaceSelector
  if (context.webhook === undefined) return skip(title, 'no webhook configuration')
  const protectedOnes = protectedNamespaces(context)
  const included: string[] = []
  for (const namespace of protectedOnes) {
    const labels = await namespaceLabels(context, namespace)
    if (selectsNamespace(selector, namespace, labels)) included.push(namespace)
  }
  if (included.length === 0)
    return pass(title, `namespaceSelector excludes ${protectedOnes.join(', ')}`)
  return fail(
    title,
    `namespaceSelector sends pods of ${included.join(', ')} to the webhook: it can deadlock its own restart`,
    'add them to the kubernetes.io/metadata.name NotIn list of the namespaceSelector (as the shipped manifests do)',
  )
}

/**
 * What to do about an OIDC document that could not be read, by cause. 401/403 come from authentication and RBAC
 * (the ClusterRole `system:service-account-issuer-discovery`, bound by default to `system:serviceaccounts` only);
 * 404 means the API server did not install the endpoints (kubernetes pkg/controlplane: it logs "Could not construct
 * pre-rendered responses for ServiceAccountIssuerDiscovery endpoints" when the issuer flags do not allow it); any
 * other status is reported as received, since no flag of ours explains it.
 */
function oidcCause(error: unknown): { detail: string; fix: string } {
  const message = error instanceof Error ? error.message : String(error)
  if (!(error instanceof OidcReadError)) {
    return { detail: message, fix: 'the API server serves malformed discovery documents' }
  }
  switch (error.status) {
    case undefined:
      return {
        detail: message,
        fix: "check the kubeconfig's server address, the network and the CA",
      }
    case 401:
      return { detail: `not authenticated: ${message}`, fix: "check the kubeconfig's credentials" }
    case 403:
      return {
        detail: `forbidden by RBAC: ${message}`,
        fix:
          'bind the ClusterRole system:service-account-issuer-discovery to the user of this kubeconfig, e.g. ' +
          'kubectl create clusterrolebinding oidc-reader --clusterrole=system:service-account-issuer-discovery --user=<you>',
      }
    case 404:
      return {
        detail: `not served: ${message}`,
        fix:
          'the API server has no issuer discovery: set --service-account-issuer to an https URL ' +
          '(and --service-account-jwks-uri when the issuer is not the API server) and restart it',
      }
    default:
      return {
        detail: `unexpected answer: ${message}`,
        fix: "the message is the API server's own; the issuer flags are not the cause",
      }
  }
}

/** The API server serves the OIDC discovery document and JWKS (Vultr needs them to trust the tokens). */
export async function checkOidc(context: Pick<DoctorContext, 'client'>): Promise<CheckResult> {
  const title = 'OIDC discovery'
  try {
    const { discovery, keys } = await fetchOidcDocuments(context.client)
    return pass(title, `issuer ${discovery.issuer}, ${keys.length} signing key(s)`)
  } catch (error) {
    const { detail, fix } = oidcCause(error)
    return fail(title, detail, fix)
  }
}
