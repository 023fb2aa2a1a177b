/**
 * Doctor checks on how the API server reaches the webhook: the MutatingWebhookConfiguration, its settings, and the
 * Service it points at with ready endpoints (classic: the webhook's Service; Knative: the gateway alias).
 * @module
 */

import { getObject } from '../shared/kube.ts'
import {
  MWC_PATH,
  ourWebhook,
  type ServiceRef,
  type WebhookEntry,
} from '../shared/webhook-configuration.ts'
import { type CheckResult, type DoctorContext, fail, pass, skip, warn } from './context.ts'

/**
 * Turns a webhook that calls a `url` back into the shipped one that calls the Service. `kubectl apply` alone cannot:
 * it adds `service` next to the live `url`, and the API server rejects a clientConfig with both. So: delete the
 * configuration, apply the manifests, and re-run generate-certs.sh, which patches the caBundle back in. Pods created
 * between the delete and the apply are not sent to the webhook.
 */
function reinstallWebhookCommands(mode: DoctorContext['mode'], configuration: string): string {
  const dir = mode === 'knative' ? 'knative/' : 'deploy/'
  return `kubectl delete mutatingwebhookconfiguration ${configuration} && kubectl apply -k ${dir} && ./generate-certs.sh --mode ${mode} (kubectl apply alone cannot turn url back into service: the API server rejects both)`
}

/** Reads the configuration and picks our webhook entry (by name, else the first). */
export async function loadWebhook(
  context: Omit<DoctorContext, 'webhook'>,
): Promise<{ webhook?: WebhookEntry; result: CheckResult }> {
  const name = `MutatingWebhookConfiguration ${context.configurationName}`
  const got = await getObject(context, `${MWC_PATH}/${context.configurationName}`)
  const apply =
    context.mode === 'knative' ? 'kubectl apply -k knative/' : 'kubectl apply -k deploy/'
  if ('missing' in got) return { result: fail(name, 'not found', `install it: ${apply}`) }
  if ('error' in got)
    return {
      result: fail(name, `cannot read it: ${got.error}`, 'check your kubeconfig and access'),
    }
  const webhook = ourWebhook(got.found)
  if (webhook === undefined)
    return { result: fail(name, 'has no webhooks', `re-apply it: ${apply}`) }
  const service = webhook.clientConfig?.service
  if (service === undefined) {
    return {
      webhook,
      result: fail(
        name,
        `webhook ${webhook.name} uses a url, not a Service`,
        reinstallWebhookCommands(context.mode, context.configurationName),
      ),
    }
  }
  const target = `Service ${service.namespace}/${service.name}:${service.port ?? 443}${service.path ?? ''}`
  return { webhook, result: pass(name, `webhook ${webhook.name} → ${target}`) }
}

function settingsProblems(webhook: WebhookEntry, mode: DoctorContext['mode']): string[] {
  const problems: string[] = []
  if (!(webhook.admissionReviewVersions ?? []).includes('v1'))
    problems.push('admissionReviewVersions lacks v1')
  if (webhook.sideEffects !== 'None')
    problems.push(`sideEffects is ${webhook.sideEffects}, not None (dry-run pods fail)`)
  if (webhook.reinvocationPolicy !== 'IfNeeded') {
    problems.push(
      'reinvocationPolicy is not IfNeeded (containers added by later webhooks get no credentials)',
    )
  }
  const timeout = webhook.timeoutSeconds ?? 10
  if (mode === 'knative' && timeout < 30)
    problems.push(`timeoutSeconds ${timeout} < 30 (cold starts)`)
  if (mode === 'knative' && webhook.failurePolicy === 'Fail') {
    problems.push('failurePolicy Fail: safe only with min-scale >= 1 (knative/overlays/production)')
  }
  return problems
}

/** admissionReviewVersions, sideEffects, reinvocationPolicy (webhook ordering), timeout and failurePolicy. */
export async function checkSettings(context: DoctorContext): Promise<CheckResult> {
  const name = 'webhook settings'
  const { webhook } = context
  if (webhook === undefined) return skip(name, 'no webhook configuration')
  const problems = settingsProblems(webhook, context.mode)
  const summary = `failurePolicy ${webhook.failurePolicy ?? 'Fail'}, timeoutSeconds ${webhook.timeoutSeconds ?? 10}, reinvocationPolicy ${webhook.reinvocationPolicy ?? 'Never'}`
  if (problems.length === 0) return pass(name, summary)
  return warn(
    name,
    problems.join('; '),
    're-apply the shipped manifests, or edit the MutatingWebhookConfiguration',
  )
}

function servicePort(service: Record<string, unknown>, port: number) {
  const spec = (service['spec'] ?? {}) as {
    type?: string
    ports?: { port: number; name?: string }[]
  }
  return { type: spec.type ?? 'ClusterIP', port: (spec.ports ?? []).find((p) => p.port === port) }
}

/** The Service exists, is not ExternalName/headless, and has the port the webhook names. */
export async function checkService(context: DoctorContext): Promise<CheckResult> {
  const ref = context.webhook?.clientConfig?.service
  if (ref === undefined) return skip('Service', 'no webhook Service to check')
  const name = `Service ${ref.namespace}/${ref.name}`
  const got = await getObject(context, `/api/v1/namespaces/${ref.namespace}/services/${ref.name}`)
  const fix =
    context.mode === 'knative'
      ? "apply the gateway alias: kubectl apply -k knative/ (its namespace must be the gateway's)"
      : 'kubectl apply -k deploy/'
  if ('missing' in got) return fail(name, 'not found: the API server cannot call the webhook', fix)
  if ('error' in got) return fail(name, `cannot read it: ${got.error}`, fix)
  const { type, port } = servicePort(got.found, ref.port ?? 443)
  if (type === 'ExternalName') {
    return fail(
      name,
      'is ExternalName: the API server cannot dial it',
      'point the webhook at the gateway alias Service (knative/)',
    )
  }
  if (port === undefined) return fail(name, `has no port ${ref.port ?? 443}`, fix)
  return pass(name, `${type}, port ${port.port}`)
}

interface EndpointSlice {
  metadata?: { labels?: Record<string, string> }
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean } }[]
}

function readyAddresses(slices: readonly EndpointSlice[], service: ServiceRef): number {
  return slices
    .filter((slice) => slice.metadata?.labels?.['kubernetes.io/service-name'] === service.name)
    .flatMap((slice) => slice.endpoints ?? [])
    .filter((endpoint) => endpoint.conditions?.ready !== false)
    .reduce((count, endpoint) => count + (endpoint.addresses?.length ?? 0), 0)
}

/** The Service has at least one ready endpoint (EndpointSlices). */
export async function checkEndpoints(context: DoctorContext): Promise<CheckResult> {
  const ref = context.webhook?.clientConfig?.service
  if (ref === undefined) return skip('endpoints', 'no webhook Service to check')
  const name = `endpoints of ${ref.namespace}/${ref.name}`
  const selector = encodeURIComponent(`kubernetes.io/service-name=${ref.name}`)
  const path = `/apis/discovery.k8s.io/v1/namespaces/${ref.namespace}/endpointslices?labelSelector=${selector}`
  const got = await getObject(context, path)
  if ('error' in got)
    return fail(name, `cannot list EndpointSlices: ${got.error}`, 'check your access')
  const slices = 'found' in got ? ((got.found['items'] ?? []) as EndpointSlice[]) : []
  const ready = readyAddresses(slices, ref)
  if (ready > 0) return pass(name, `${ready} ready`)
  const fix =
    context.mode === 'knative'
      ? `the alias selects the gateway pods: kubectl -n ${ref.namespace} get pods (is the selector the gateway's labels?)`
      : `kubectl -n ${ref.namespace} get pods -l app.kubernetes.io/name=irsa-webhook; kubectl -n ${ref.namespace} logs -l app.kubernetes.io/name=irsa-webhook`
  return fail(name, 'no ready endpoints: the webhook is not responding', fix)
}
