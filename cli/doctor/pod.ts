/**
 * Doctor check: a dry-run pod (`dryRun=All`, nothing is stored) with an annotated ServiceAccount must come back
 * from the API server mutated — the whole chain through the real webhook.
 * @module
 */
import { ANNOTATIONS, ENV, LABELS, TOKEN_VOLUME } from '../../function/names.ts'
import { getObject, statusMessage } from '../shared/kube.ts'
import { type CheckResult, type DoctorContext, fail, pass, skip } from './context.ts'

const TITLE = 'dry-run pod'

interface ReturnedPod {
  spec?: {
    containers?: { name: string; env?: { name: string; value?: string }[] }[]
    volumes?: { name: string }[]
  }
}

/** The pod the doctor asks the API server to create in dry-run. */
function probePod(namespace: string, serviceAccount: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'irsa-doctor-',
      namespace,
      // api.vultr.com/irsa=true: with the opt-in label profile only labelled Pods are sent to the webhook, and
      // the label changes nothing for a Pod whose ServiceAccount has a role (every other profile ignores it).
      labels: { 'app.kubernetes.io/created-by': 'irsa-webhook-doctor', [LABELS.optIn]: 'true' },
    },
    spec: {
      serviceAccountName: serviceAccount,
      containers: [{ name: 'probe', image: 'registry.k8s.io/pause:3.10' }],
    },
  }
}

/** What is missing from the returned pod, or an empty list when it carries the identity for `role`. */
export function missingIdentity(pod: ReturnedPod, role: string): string[] {
  const env = pod.spec?.containers?.[0]?.env ?? []
  const value = (name: string) => env.find((entry) => entry.name === name)?.value
  const missing: string[] = []
  if (value(ENV.roleArn) !== role) missing.push(`${ENV.roleArn}=${role}`)
  if (value(ENV.tokenFile) !== TOKEN_VOLUME.tokenFile) missing.push(ENV.tokenFile)
  if (!(pod.spec?.volumes ?? []).some((volume) => volume.name === TOKEN_VOLUME.name)) {
    missing.push(`volume ${TOKEN_VOLUME.name}`)
  }
  return missing
}

/**
 * How the API server says it could not reach the webhook. It resolves a webhook Service the way it resolves an
 * aggregated API (k8s.io/apiserver/pkg/util/proxy/proxy.go): by default `ResolveCluster` gives the ClusterIP, which
 * it dials, so no ready pod shows as a connect error or a timeout; only with `--enable-aggregator-routing` does
 * `ResolveEndpoint` pick an endpoint itself and answer `no endpoints available for service "…"` when there is none.
 */
const UNREACHABLE = [
  /no endpoints available for service/i, // aggregator routing
  /connect: (?:connection refused|no route to host)|i\/o timeout/i, // default: dialing the ClusterIP
  // Nothing answered in time, or the connection broke. Not a bare "timeout": every such message carries the
  // webhook URL, whose `?timeout=10s` would match.
  /context deadline exceeded|Client\.Timeout exceeded|context canceled|\bEOF\b|connection reset/i,
]

/** Advice for an API server error on pod creation. */
export function adviceFor(message: string): string {
  if (/x509|certificate/i.test(message))
    return 'TLS: see the certificate checks; ./generate-certs.sh then restart'
  if (/denied the request/i.test(message))
    return `fix the ServiceAccount's ${ANNOTATIONS.role} (a role UUID or arn: value)`
  if (UNREACHABLE.some((pattern) => pattern.test(message))) {
    return 'the webhook is not responding: no ready pod behind its Service (the API server dials the ClusterIP and gets connection refused or a timeout; with aggregator routing it says no endpoints available). See the Service and endpoints checks and the webhook logs'
  }
  return 'read the message; the webhook logs show the outcome of each review'
}

async function roleOf(context: Pick<DoctorContext, 'client'>, namespace: string, name: string) {
  const got = await getObject(context, `/api/v1/namespaces/${namespace}/serviceaccounts/${name}`)
  if ('missing' in got) return { error: `ServiceAccount ${namespace}/${name} not found` }
  if ('error' in got)
    return { error: `cannot read ServiceAccount ${namespace}/${name}: ${got.error}` }
  const annotations = (got.found['metadata'] as { annotations?: Record<string, string> })
    ?.annotations
  const role = annotations?.[ANNOTATIONS.role]
  if (role === undefined)
    return { error: `ServiceAccount ${namespace}/${name} has no ${ANNOTATIONS.role}` }
  return { role }
}

function warningsOf(headers: Record<string, string | string[] | undefined>): string {
  const raw = headers['warning']
  const list = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map((w) =>
    w.replace(/^\d{3} - /, ''),
  )
  return list.length === 0 ? '' : ` (warnings: ${list.join('; ')})`
}

/** Creates the probe pod with `dryRun=All` and checks that the answer carries the injected identity. */
export async function checkDryRunPod(
  context: Pick<DoctorContext, 'client' | 'probe'>,
): Promise<CheckResult> {
  if (context.probe === undefined) {
    return skip(
      TITLE,
      'pass --service-account <ns>/<name> of an annotated ServiceAccount to run it',
    )
  }
  const { namespace, name } = context.probe
  const title = `${TITLE} with ${namespace}/${name}`
  const sa = await roleOf(context, namespace, name)
  if (sa.role === undefined) {
    return fail(
      title,
      sa.error,
      `kubectl -n ${namespace} annotate sa ${name} ${ANNOTATIONS.role}=<role id>`,
    )
  }
  const path = `/api/v1/namespaces/${namespace}/pods?dryRun=All`
  let response: Awaited<ReturnType<DoctorContext['client']['request']>>
  try {
    response = await context.client.request('POST', path, probePod(namespace, name))
  } catch (error) {
    return fail(
      title,
      `POST ${path}: ${error instanceof Error ? error.message : error}`,
      'check your access',
    )
  }
  if (response.status !== 201 && response.status !== 200) {
    const message = statusMessage(response)
    return fail(title, `the API server refused the pod: ${message}`, adviceFor(message))
  }
  const missing = missingIdentity(response.body as ReturnedPod, sa.role)
  const warnings = warningsOf(response.headers)
  if (missing.length === 0)
    return pass(title, `came back with ${ENV.roleArn} and the token volume${warnings}`)
  return fail(
    title,
    `came back without ${missing.join(', ')}${warnings}`,
    `is namespace ${namespace} excluded (namespaceSelector, label irsa-webhook=disabled)? failurePolicy Ignore hides a failing webhook: check its logs; irsa-webhook mutate shows the expected outcome`,
  )
}
