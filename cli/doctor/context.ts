/**
 * What every doctor check reads: the API client, the installation's names and the webhook entry of the
 * MutatingWebhookConfiguration. A check resolves one or more results and never throws for cluster trouble.
 * @module
 */
import type { KubeClient } from '../shared/kube.ts'
import type { ServiceRef, WebhookEntry } from '../shared/webhook-configuration.ts'

export type Status = 'pass' | 'warn' | 'fail' | 'skip'

export interface CheckResult {
  readonly name: string
  readonly status: Status
  readonly detail: string
  /** What to do about a failure or warning. */
  readonly fix?: string
}

export interface DoctorContext {
  readonly client: KubeClient
  readonly mode: 'classic' | 'knative'
  /** The webhook's own namespace (Deployment or Knative Service). */
  readonly namespace: string
  readonly configurationName: string
  /** The webhook's ServiceAccount, whose RBAC is checked. */
  readonly identity: { readonly namespace: string; readonly name: string }
  /** An annotated ServiceAccount for the dry-run pod. */
  readonly probe: { readonly namespace: string; readonly name: string } | undefined
  /** Override for the Secret holding the serving certificate. */
  readonly tlsSecret: string | undefined
  readonly webhook: WebhookEntry | undefined
}

export type Check = (context: DoctorContext) => Promise<CheckResult | readonly CheckResult[]>

export const pass = (name: string, detail: string): CheckResult => ({
  name,
  status: 'pass',
  detail,
})
export const warn = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'warn',
  detail,
  fix,
})
export const fail = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'fail',
  detail,
  fix,
})
export const skip = (name: string, detail: string): CheckResult => ({
  name,
  status: 'skip',
  detail,
})

/** True when `conditions` has `type` with status True. */
export function conditionTrue(object: Record<string, unknown>, type = 'Ready'): boolean {
  const status = object['status'] as
    | { conditions?: { type?: string; status?: string }[] }
    | undefined
  return (status?.conditions ?? []).some((c) => c.type === type && c.status === 'True')
}

/** The message of the first condition that is not True, for a detail line. */
export function conditionMessage(object: Record<string, unknown>, type = 'Ready'): string {
  const status = object['status'] as
    | { conditions?: { type?: string; status?: string; reason?: string; message?: string }[] }
    | undefined
  const condition = (status?.conditions ?? []).find((c) => c.type === type)
  if (condition === undefined) return `no ${type} condition yet`
  return `${type}=${condition.status ?? '?'}${condition.reason ? ` (${condition.reason})` : ''}${
    condition.message ? `: ${condition.message}` : ''
  }`
}

/** The in-cluster DNS name the API server checks the certificate against. */
export function serviceHost(service: ServiceRef): string {
  return `${service.name}.${service.namespace}.svc`
}
