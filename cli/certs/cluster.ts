/**
 * What `irsa-webhook certs` reads and writes in the cluster: the two Secrets and the MutatingWebhookConfiguration.
 * Every write is guarded: a Secret is created (409 when another run created it first) or replaced with the
 * resourceVersion it was read at (409 when it changed since); caBundle is patched with that same precondition
 * (a JSON patch that sets `metadata.resourceVersion`, which the API server checks like an update's). A 409 is a
 * {@link Conflict}: the caller reads everything again and decides again.
 * @module
 */
import { hostname } from 'node:os'
import { type KubeClient, type KubeResponse, statusMessage } from '../shared/kube.ts'
import { MWC_PATH } from '../shared/webhook-configuration.ts'
import { MANAGED_BY, type SecretState } from './plan.ts'

const secretsPath = (namespace: string) => `/api/v1/namespaces/${namespace}/secrets`

/** Another writer got there first (HTTP 409): read again and decide again. */
export class Conflict extends Error {
  override readonly name = 'Conflict'
}

/** The cluster could not be read or written as needed; the message says which request and why. */
export class ClusterError extends Error {
  override readonly name = 'ClusterError'
}

function fail(what: string, response: KubeResponse): never {
  if (response.status === 409) throw new Conflict(`${what}: ${statusMessage(response)}`)
  const hint =
    response.status === 403 ? ' (the RBAC of deploy/components/certs/rbac.yaml grants it)' : ''
  throw new ClusterError(`${what}: ${statusMessage(response)}${hint}`)
}

const decode = (data: Record<string, string> | undefined): Record<string, string> =>
  Object.fromEntries(
    Object.entries(data ?? {}).map(([key, value]) => [
      key,
      Buffer.from(value, 'base64').toString('utf8'),
    ]),
  )

interface SecretBody {
  metadata?: {
    resourceVersion?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
  }
  data?: Record<string, string>
}

/** Reads a Secret: absent, foreign (no ownership label), or ours. */
export async function readSecret(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<SecretState> {
  const response = await client.get(`${secretsPath(namespace)}/${name}`)
  if (response.status === 404) return { kind: 'absent' }
  if (response.status !== 200) fail(`get Secret ${namespace}/${name}`, response)
  const body = response.body as SecretBody
  if (body.metadata?.labels?.[MANAGED_BY.key] !== MANAGED_BY.value) return { kind: 'foreign', name }
  return {
    kind: 'ours',
    name,
    resourceVersion: body.metadata.resourceVersion ?? '',
    data: decode(body.data),
    labels: body.metadata.labels,
    ...(body.metadata.annotations === undefined ? {} : { annotations: body.metadata.annotations }),
  }
}

/**
 * Creates the Secret (`previous` absent) or replaces it at the resourceVersion it was read at, keeping the labels and
 * annotations it had (only its data changes, and the ownership label stays). `type` is
 * kubernetes.io/tls for the serving Secret (tls.crt, tls.key) and Opaque for the CA (ca.crt, ca.key), as
 * generate-certs.sh makes them.
 */
export async function writeSecret(
  client: KubeClient,
  namespace: string,
  name: string,
  type: 'kubernetes.io/tls' | 'Opaque',
  data: Record<string, string>,
  previous: SecretState,
): Promise<void> {
  if (previous.kind === 'foreign') throw new Error(`refusing to write Secret ${name}: not ours`)
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace,
      labels: {
        ...(previous.kind === 'ours' ? previous.labels : {}),
        [MANAGED_BY.key]: MANAGED_BY.value,
      },
      ...(previous.kind === 'ours'
        ? { resourceVersion: previous.resourceVersion, annotations: previous.annotations }
        : {}),
    },
    type,
    data: Object.fromEntries(
      Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    ),
  }
  const response =
    previous.kind === 'ours'
      ? await client.request('PUT', `${secretsPath(namespace)}/${name}`, body)
      : await client.request('POST', secretsPath(namespace), body)
  if (response.status !== 200 && response.status !== 201)
    fail(`${previous.kind === 'ours' ? 'update' : 'create'} Secret ${namespace}/${name}`, response)
}

/** The part of a MutatingWebhookConfiguration the command reads. */
export interface WebhookConfiguration {
  readonly name: string
  readonly resourceVersion: string
  readonly webhooks: readonly {
    readonly name: string
    readonly service: { readonly namespace: string; readonly name: string } | undefined
    /** clientConfig.url, when the webhook is called by URL instead of a Service. */
    readonly url: string | undefined
    readonly caBundle: string
  }[]
}

interface MwcBody {
  metadata?: { resourceVersion?: string }
  webhooks?: {
    name?: string
    clientConfig?: {
      service?: { namespace?: string; name?: string }
      url?: string
      caBundle?: string
    }
  }[]
}

export async function readWebhookConfiguration(
  client: KubeClient,
  name: string,
): Promise<WebhookConfiguration> {
  const response = await client.get(`${MWC_PATH}/${name}`)
  if (response.status === 404)
    throw new ClusterError(
      `MutatingWebhookConfiguration ${name} not found: apply the manifests first (this command fills in its caBundle)`,
    )
  if (response.status !== 200) fail(`get MutatingWebhookConfiguration ${name}`, response)
  const body = response.body as MwcBody
  return {
    name,
    resourceVersion: body.metadata?.resourceVersion ?? '',
    webhooks: (body.webhooks ?? []).map((hook) => {
      const service = hook.clientConfig?.service
      return {
        name: hook.name ?? '',
        service:
          service?.name === undefined
            ? undefined
            : { namespace: service.namespace ?? '', name: service.name },
        url: hook.clientConfig?.url,
        caBundle: Buffer.from(hook.clientConfig?.caBundle ?? '', 'base64').toString('utf8'),
      }
    }),
  }
}

/** Sets `bundle` (PEM) as the caBundle of every webhook, at the resourceVersion the configuration was read at. */
export async function patchCaBundle(
  client: KubeClient,
  configuration: WebhookConfiguration,
  bundle: string,
): Promise<void> {
  const value = Buffer.from(bundle).toString('base64')
  const patch = [
    { op: 'replace', path: '/metadata/resourceVersion', value: configuration.resourceVersion },
    ...configuration.webhooks.map((_, i) => ({
      op: 'add',
      path: `/webhooks/${i}/clientConfig/caBundle`,
      value,
    })),
  ]
  const response = await client.request(
    'PATCH',
    `${MWC_PATH}/${configuration.name}`,
    patch,
    undefined,
    'application/json-patch+json',
  )
  if (response.status !== 200)
    fail(`patch caBundle of MutatingWebhookConfiguration ${configuration.name}`, response)
}

/**
 * Records a core/v1 Event on a Secret (what `kubectl describe secret` and `kubectl get events` show). Best effort:
 * returns the failure instead of throwing, as an Event is a report, not the work.
 */
export async function recordSecretEvent(
  client: KubeClient,
  namespace: string,
  secret: string,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
): Promise<string | undefined> {
  const now = new Date().toISOString()
  const event = {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${secret}.`, namespace },
    involvedObject: { apiVersion: 'v1', kind: 'Secret', name: secret, namespace },
    type,
    reason,
    message,
    source: { component: MANAGED_BY.value },
    reportingComponent: MANAGED_BY.value,
    reportingInstance: hostname(),
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  }
  const response = await client.request('POST', `/api/v1/namespaces/${namespace}/events`, event)
  return response.status === 201 ? undefined : statusMessage(response)
}
