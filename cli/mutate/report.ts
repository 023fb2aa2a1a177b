/**
 * Says, for one workload, what the webhook decided and why: the answer to "why did my pod not get credentials?".
 * @module
 */
import { ANNOTATIONS, TOKEN_VOLUME } from '../../function/names.ts'
import type { Decision } from '../../function/review-pod.ts'

type Explain = (decision: Decision, hint: string) => string

const WHY: Partial<Record<Decision['outcome'], Explain>> = {
  mutated: (d) =>
    `ServiceAccount ${d.serviceAccount} has ${ANNOTATIONS.role}; ${patchSize(d)} patch operations`,
  'not-annotated': (d, hint) =>
    `ServiceAccount ${d.serviceAccount} has no ${ANNOTATIONS.role} annotation; pod not mutated${hint}`,
  'sa-not-found': (d) =>
    `ServiceAccount ${d.serviceAccount} is not among the given ServiceAccounts; the webhook would ` +
    'admit the pod unmutated (pass its manifest with --service-account)',
  'invalid-role': (d) =>
    d.kind === 'answer' && !d.answer.allowed
      ? `the webhook DENIES this pod: ${d.answer.message ?? ''}`
      : `invalid ${ANNOTATIONS.role} on ServiceAccount ${d.serviceAccount}; pod not mutated (INVALID_ROLE_POLICY=warn)`,
  'volume-conflict': () =>
    `the pod already has a volume named ${TOKEN_VOLUME.name} that is not the token volume; pod not mutated`,
  'already-mutated': () => 'the pod already carries the identity; nothing to add',
  'mirror-pod': () => 'static (mirror) pods are never mutated',
  'bad-request': (d) => `the webhook cannot read this pod: ${d.kind === 'error' ? d.message : ''}`,
}

function patchSize(decision: Decision): number {
  return decision.kind === 'answer' ? (decision.answer.patch?.length ?? 0) : 0
}

/** Lines for stderr: `<what>: outcome: <outcome> — <why>`, then one line per warning. */
export function reportDecision(what: string, decision: Decision, hint = ''): string[] {
  const why =
    WHY[decision.outcome]?.(decision, hint) ?? (decision.kind === 'error' ? decision.message : '')
  const lines = [`${what}: outcome: ${decision.outcome} — ${why}`]
  const warnings = decision.kind === 'answer' ? (decision.answer.warnings ?? []) : []
  for (const warning of warnings) lines.push(`  warning: ${warning}`)
  return lines
}

/** True when the webhook would refuse the pod (a denial or an error answer). */
export function isRefused(decision: Decision): boolean {
  return decision.kind === 'error' || !decision.answer.allowed
}

/**
 * A hint for a ServiceAccount that has a role-like annotation under another key (a typo, or the EKS one).
 * Empty when there is nothing to say.
 */
export function annotationHint(annotations: Readonly<Record<string, string>>): string {
  const near = Object.keys(annotations).filter(
    (key) => key !== ANNOTATIONS.role && /role/i.test(key),
  )
  if (near.length === 0) return ''
  return ` (it has ${near.map((key) => JSON.stringify(key)).join(', ')}: the webhook reads exactly ${ANNOTATIONS.role})`
}
