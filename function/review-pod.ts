/**
 * The admission decision table, in one function. Every outcome the webhook can give is decided here.
 *
 * | case                                            | outcome             | answer                                     |
 * |-------------------------------------------------|---------------------|--------------------------------------------|
 * | not a Pod CREATE                                | `not-pod-create`    | 200, allowed, no patch                     |
 * | mirror (static) pod                             | `mirror-pod`        | 200, allowed, no patch                     |
 * | ServiceAccount not found                        | `sa-not-found`      | 200, allowed, no patch, warning            |
 * | lookup failed or timed out                      | `lookup-failed`     | HTTP 500: the webhook's failurePolicy decides |
 * | ServiceAccount not annotated                    | `not-annotated`     | 200, allowed, no patch                     |
 * | the same, pod labelled `api.vultr.com/irsa: "true"` | `not-annotated` | 200, allowed, no patch, warning          |
 * | role annotation invalid (policy `deny`)         | `invalid-role`      | 200, allowed: false, message               |
 * | role annotation invalid (policy `warn`)         | `invalid-role`      | 200, allowed, no patch, warning            |
 * | foreign volume named `vultr-irsa-token`         | `volume-conflict`   | 200, allowed, no patch, warning            |
 * | nothing left to add (already mutated)           | `already-mutated`   | 200, allowed, no patch                     |
 * | mutated                                         | `mutated`           | 200, allowed, JSONPatch, warnings          |
 *
 * A pod labelled `api.vultr.com/irsa: "true"` asked for credentials (the opt-in profile sends only such pods): when
 * its ServiceAccount is missing or has no role, the warning says the pod gets none.
 * @module
 */
import type { AdmissionAnswer, AdmissionRequest } from './admission.ts'
import { type IdentityDefaults, readIdentity } from './identity.ts'
import type { Pod, ServiceAccountInfo } from './kube-objects.ts'
import { planPodMutation } from './mutate-pod.ts'
import { ANNOTATIONS, LABELS } from './names.ts'
import { readPod } from './pod.ts'

/** Result of looking a ServiceAccount up. */
export type Lookup =
  | { readonly kind: 'found'; readonly serviceAccount: ServiceAccountInfo }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'failed'; readonly reason: string }

/** Where ServiceAccounts come from: the Kubernetes API (GET + cache, or watch), or a file in development. */
export interface ServiceAccountSource {
  /** Never rejects; resolves `failed` when the signal aborts. */
  get(namespace: string, name: string, signal: AbortSignal): Promise<Lookup>
  /** The answer when it is at hand without I/O (a fresh cache entry), so no deadline needs arming. */
  cached?(namespace: string, name: string): Lookup | undefined
}

export type Outcome =
  | 'not-pod-create'
  | 'mirror-pod'
  | 'sa-not-found'
  | 'lookup-failed'
  | 'not-annotated'
  | 'invalid-role'
  | 'volume-conflict'
  | 'already-mutated'
  | 'mutated'

export interface ReviewSettings extends IdentityDefaults {
  readonly invalidRolePolicy: 'deny' | 'warn'
}

/** The decision: either an admission answer, or a failure the HTTP layer turns into a 5xx/4xx. */
export type Decision =
  | {
      readonly kind: 'answer'
      readonly outcome: Outcome
      readonly answer: AdmissionAnswer
      readonly serviceAccount?: string
    }
  | {
      readonly kind: 'error'
      readonly outcome: Outcome | 'bad-request'
      readonly status: 400 | 500
      readonly message: string
      readonly serviceAccount?: string
    }

export interface ReviewDeps {
  readonly serviceAccounts: ServiceAccountSource
  readonly settings: ReviewSettings
  /** The review's deadline; called only when the lookup has to wait for I/O (it may arm a timer). */
  readonly signal: () => AbortSignal
}

const allow = (outcome: Outcome, warnings: readonly string[] = []): Decision => ({
  kind: 'answer',
  outcome,
  answer: { allowed: true, warnings },
})

function isPodCreate(request: AdmissionRequest): boolean {
  const { group, kind } = request.kind
  return group === '' && kind === 'Pod' && request.operation === 'CREATE' && !request.subResource
}

/**
 * Decides one review. Never throws for bad input or API trouble: those are outcomes. The decision is returned
 * as is when nothing has to wait (a ServiceAccount at hand in the cache); a promise only when the lookup does I/O.
 */
export function reviewPod(
  request: AdmissionRequest,
  deps: ReviewDeps,
): Decision | Promise<Decision> {
  if (!isPodCreate(request)) return allow('not-pod-create')
  const parsed = readPod(request.object)
  if (!parsed.ok)
    return { kind: 'error', outcome: 'bad-request', status: 400, message: parsed.error }
  const pod: Pod = parsed.value
  if (pod.metadata?.annotations?.[ANNOTATIONS.mirror] !== undefined) return allow('mirror-pod')
  // Pods made by controllers have no metadata.namespace; the request always carries it.
  const namespace = request.namespace ?? pod.metadata?.namespace ?? ''
  // The ServiceAccount admission plugin defaults an empty name to "default" before webhooks run.
  const name = pod.spec.serviceAccountName || 'default'
  const cached = deps.serviceAccounts.cached?.(namespace, name)
  if (cached !== undefined) return decideLookup(pod, namespace, name, cached, deps.settings)
  return deps.serviceAccounts
    .get(namespace, name, deps.signal())
    .then((lookup) => decideLookup(pod, namespace, name, lookup, deps.settings))
}

function decideLookup(
  pod: Pod,
  namespace: string,
  name: string,
  lookup: Lookup,
  settings: ReviewSettings,
): Decision {
  const serviceAccount = `${namespace}/${name}`
  if (lookup.kind === 'failed') {
    const message = `looking up ServiceAccount ${serviceAccount} failed: ${lookup.reason}`
    return { kind: 'error', outcome: 'lookup-failed', status: 500, message, serviceAccount }
  }
  if (lookup.kind === 'not-found') {
    const warning = asksForCredentials(pod)
      ? `${ASKED}: ServiceAccount ${serviceAccount} does not exist`
      : `ServiceAccount ${serviceAccount} not found; pod not mutated`
    return { ...allow('sa-not-found', [warning]), serviceAccount }
  }
  return { ...decideIdentity(pod, lookup.serviceAccount, settings), serviceAccount }
}

/**
 * Kept short: admission.ts cuts every warning to 120 characters, the limit the AdmissionResponse API asks webhooks
 * to keep to "if possible" (k8s.io/api admission/v1 types.go, `warnings`).
 */
const ASKED = `pod labelled ${LABELS.optIn}=true gets no credentials`

/** The pod carries the opt-in label: it asked for credentials, so getting none deserves a warning. */
function asksForCredentials(pod: Pod): boolean {
  return pod.metadata?.labels?.[LABELS.optIn] === 'true'
}

function decideIdentity(pod: Pod, sa: ServiceAccountInfo, settings: ReviewSettings): Decision {
  const identity = readIdentity(sa, sa.annotations, settings)
  if (identity.kind === 'none') {
    if (!asksForCredentials(pod)) return allow('not-annotated')
    const serviceAccount = `${sa.namespace}/${sa.name}`
    const warning = `${ASKED}: ServiceAccount ${serviceAccount} has no ${ANNOTATIONS.role}`
    return allow('not-annotated', [warning])
  }
  if (identity.kind === 'invalid') {
    if (settings.invalidRolePolicy === 'warn') return allow('invalid-role', [identity.warning])
    return {
      kind: 'answer',
      outcome: 'invalid-role',
      answer: { allowed: false, message: identity.message },
    }
  }
  const plan = planPodMutation(pod, identity.identity)
  const warnings = [...identity.warnings, ...plan.warnings]
  if (plan.blocked !== undefined) return allow('volume-conflict', [...warnings, plan.blocked])
  if (plan.patch.length === 0) return allow('already-mutated', warnings)
  return {
    kind: 'answer',
    outcome: 'mutated',
    answer: { allowed: true, patch: plan.patch, warnings },
  }
}
