/**
 * `irsa-webhook certs`: the webhook's TLS made in the cluster — what generate-certs.sh makes from a workstation —
 * for the install Job and the renew CronJob of deploy/components/certs, or by hand.
 *
 * One run: read the MutatingWebhookConfiguration (the Service it calls gives the name to certify and the mode), the
 * CA Secret and the serving Secret; decide (plan.ts); write what changed in the one order that never leaves the
 * API server without a certificate it trusts:
 *   1. the CA Secret (a new or replaced CA);
 *   2. caBundle: the current CA, plus the previous one while servers may still present its certificate;
 *   3. the serving Secret, signed by the CA that caBundle now trusts.
 * A 409 on any write (another run, or someone else, wrote first) starts the run again from the reads.
 * @module
 */
import { isIP } from 'node:net'
import { parseArgs } from 'node:util'
import { EXIT, type Io, oneOf, UsageError } from '../shared/io.ts'
import { createKubeClient, type KubeClient, loadKubeConfig } from '../shared/kube.ts'
import {
  ClusterError,
  Conflict,
  patchCaBundle,
  readSecret,
  readWebhookConfiguration,
  recordSecretEvent,
  type WebhookConfiguration,
  writeSecret,
} from './cluster.ts'
import {
  bundleText,
  type CaStep,
  MANAGED_BY,
  type Plan,
  type Policy,
  planCertificates,
  type SecretState,
  type ServingStep,
} from './plan.ts'
import { issueServing, type KeyPairPem, makeCa, type SanName, serviceNames } from './x509.ts'

/**
 * Exit codes of `certs`: 0 the certificate is in place (made, renewed, or nothing to do); 1 a Secret it did not
 * create is in the way (left alone; with --job: 0, reported as a Warning Event); 2 usage error; 3 it could not do
 * its work (the cluster could not be read or written, the webhook configuration is missing or unusable).
 */
export const CERTS_EXIT = { ...EXIT, notOurs: 1, failed: 3 } as const

/** The Secrets' default names, as the manifests and generate-certs.sh name them. */
export const SECRET_NAMES = {
  ca: 'irsa-webhook-ca',
  classic: 'irsa-webhook-certs',
  knative: 'irsa-webhook-tls',
} as const

/** How long the previous CA stays in caBundle after its successor's certificate was written. */
export const OVERLAP_MS = 3_600_000
const MAX_ATTEMPTS = 5

const CERTS_USAGE = `Usage: irsa-webhook certs [options]

Makes the webhook's TLS in the cluster, as generate-certs.sh does from a workstation: a private CA (Secret
${SECRET_NAMES.ca}), a serving certificate for the name the API server checks — the Service the
MutatingWebhookConfiguration calls, <name>.<namespace>.svc (or the host of the URL it calls) — in the Secret the
mode reads (classic: ${SECRET_NAMES.classic}, knative: ${SECRET_NAMES.knative}), and the configuration's
caBundle. Idempotent: a valid certificate with more than --renew-before days left is left as it is ("nothing to
do"). A new CA is trusted beside the old one until the pods serve the new certificate. A Secret without the label
${MANAGED_BY.key}=${MANAGED_BY.value} was not made by this command or generate-certs.sh: it is never written.

Options:
      --mode auto|classic|knative  which Secret the webhook reads (default auto: classic when the configuration
                                   calls a Service in --namespace or a URL, knative when it calls the gateway alias)
  -n, --namespace NS        the webhook's namespace, where the Secrets live (default: irsa-system)
      --secret NAME         the serving Secret (default: ${SECRET_NAMES.classic} classic, ${SECRET_NAMES.knative} knative)
      --ca-secret NAME      the CA Secret (default: ${SECRET_NAMES.ca})
      --webhook NAME        the MutatingWebhookConfiguration (default: irsa-webhook)
      --days N              validity of a new serving certificate in days (default: 365)
      --ca-days N           validity of a new CA in days (default: 3650)
      --renew-before N      renew the certificate when fewer than N days are left (default: 30); the CA is
                            replaced when fewer than --days + N are left
      --rotate-ca           make a new CA now (the old one stays trusted while the pods switch over)
      --job                 Job behaviour: exit 0 whenever the run did its work, also when it left a Secret it
                            did not create alone (then reported as a Warning Event); non-zero only when it could not
      --kubeconfig PATH     kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)

Exit codes: 0 the certificate is in place (made, renewed, or nothing to do); 1 a Secret it did not create is in the
way, nothing written (0 with --job); 2 usage error; 3 it could not do its work (the cluster could not be read or
written, or the webhook configuration is missing, or its webhooks call different Services).`

type Mode = 'classic' | 'knative'

interface CertsOptions {
  readonly mode: Mode | 'auto'
  readonly namespace: string
  readonly secret: string | undefined
  readonly caSecret: string
  readonly webhook: string
  readonly job: boolean
  readonly kubeconfig: string | undefined
  readonly policy: Omit<Policy, 'names'>
}

function wholeDays(flag: string, value: string, min: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min)
    throw new UsageError(
      `${flag} takes a whole number of days >= ${min}, got ${JSON.stringify(value)}`,
    )
  return Number(value)
}

function parseOptions(argv: string[]): CertsOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string', default: 'auto' },
      namespace: { type: 'string', short: 'n', default: 'irsa-system' },
      secret: { type: 'string' },
      'ca-secret': { type: 'string', default: SECRET_NAMES.ca },
      webhook: { type: 'string', default: 'irsa-webhook' },
      days: { type: 'string', default: '365' },
      'ca-days': { type: 'string', default: '3650' },
      'renew-before': { type: 'string', default: '30' },
      'rotate-ca': { type: 'boolean', default: false },
      job: { type: 'boolean', default: false },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  })
  if (values.help) return 'help'
  const days = wholeDays('--days', values.days, 1)
  const caDays = wholeDays('--ca-days', values['ca-days'], 1)
  const renewBeforeDays = wholeDays('--renew-before', values['renew-before'], 0)
  if (caDays <= days + renewBeforeDays)
    throw new UsageError(
      `--ca-days (${caDays}) must be more than --days + --renew-before (${days + renewBeforeDays}): a new CA would at once be too close to its end`,
    )
  return {
    mode: oneOf('--mode', values.mode, ['auto', 'classic', 'knative'] as const),
    namespace: values.namespace,
    secret: values.secret,
    caSecret: values['ca-secret'],
    webhook: values.webhook,
    job: values.job,
    kubeconfig: values.kubeconfig,
    policy: { days, caDays, renewBeforeDays, rotateCa: values['rotate-ca'], overlapMs: OVERLAP_MS },
  }
}

/**
 * What every webhook of the configuration calls, and so the names the certificate is for: a Service (its
 * `<name>.<namespace>.svc` and `.cluster.local` form; in --namespace: classic, elsewhere: the Knative gateway alias),
 * or a URL (its host, a DNS name or an IP address; read as classic: the process serves TLS itself).
 */
function endpointOf(configuration: WebhookConfiguration, namespace: string) {
  const targets = configuration.webhooks.map((hook) =>
    hook.service !== undefined
      ? {
          what: `Service ${hook.service.namespace}/${hook.service.name}`,
          names: serviceNames(`${hook.service.name}.${hook.service.namespace}.svc`),
          mode: (hook.service.namespace === namespace ? 'classic' : 'knative') as Mode,
        }
      : urlTarget(configuration.name, hook.url),
  )
  const [first] = targets
  if (first === undefined)
    throw new ClusterError(`MutatingWebhookConfiguration ${configuration.name} has no webhooks`)
  if (targets.some((t) => t.what !== first.what))
    throw new ClusterError(
      `the webhooks of MutatingWebhookConfiguration ${configuration.name} call ${[...new Set(targets.map((t) => t.what))].join(' and ')}; one certificate cannot serve them`,
    )
  return first
}

function urlTarget(configuration: string, url: string | undefined) {
  let host: string
  try {
    host = new URL(url ?? '').hostname
  } catch {
    throw new ClusterError(
      `MutatingWebhookConfiguration ${configuration} has a webhook with neither a Service nor a valid URL`,
    )
  }
  const ip = host.replace(/^\[|\]$/g, '')
  const names: SanName[] = [isIP(ip) ? { type: 'ip', value: ip } : { type: 'dns', value: host }]
  return { what: `URL host ${host}`, names, mode: 'classic' as Mode }
}

/** What one run found and did, for the report. */
interface Done {
  readonly kind: 'done'
  readonly names: string
  readonly servingSecret: string
  readonly lines: readonly string[]
  readonly changed: boolean
  readonly issued: boolean
}
interface NotOurs {
  readonly kind: 'not-ours'
  readonly secrets: readonly string[]
}

/** Where this run writes: read from the webhook configuration and the options. */
interface Target {
  readonly configuration: WebhookConfiguration
  readonly mode: Mode
  /** What the webhooks call (`Service ns/name` or `URL host h`), and the names the certificate must carry. */
  readonly what: string
  readonly names: readonly SanName[]
  readonly namespace: string
  readonly caSecret: string
  readonly servingSecret: string
}

async function locate(client: KubeClient, options: CertsOptions): Promise<Target> {
  const configuration = await readWebhookConfiguration(client, options.webhook)
  const endpoint = endpointOf(configuration, options.namespace)
  const mode = options.mode === 'auto' ? endpoint.mode : options.mode
  return {
    configuration,
    mode,
    what: endpoint.what,
    names: endpoint.names,
    namespace: options.namespace,
    caSecret: options.caSecret,
    servingSecret: options.secret ?? SECRET_NAMES[mode],
  }
}

const day = (date: Date): string => date.toISOString().slice(0, 10)

/** Step 1: the CA kept, or made and written. */
async function ensureCa(
  client: KubeClient,
  target: Target,
  step: CaStep,
  state: SecretState,
  policy: CertsOptions['policy'],
  now: number,
): Promise<{ pair: KeyPairPem; line: string }> {
  const where = `Secret ${target.namespace}/${target.caSecret}`
  if (step.action === 'keep') return { pair: step, line: `CA: kept (${where})` }
  const pair = await makeCa(now, policy.caDays)
  const data = { 'ca.crt': pair.cert, 'ca.key': pair.key }
  await writeSecret(client, target.namespace, target.caSecret, 'Opaque', data, state)
  const verb = step.action === 'create' ? 'created' : 'replaced'
  return { pair, line: `CA: ${verb} in ${where} (${step.reason}), valid ${policy.caDays} days` }
}

/** Step 2: caBundle trusts the current CA (and the previous one during a rotation). */
async function ensureBundle(
  client: KubeClient,
  target: Target,
  plan: Extract<Plan, { kind: 'apply' }>,
  ca: KeyPairPem,
): Promise<{ changed: boolean; line: string }> {
  const { configuration } = target
  const bundle = bundleText(ca.cert, plan.previous)
  const trust = `the current CA${plan.previous.length > 0 ? ` + ${plan.previous.length} previous` : ''}`
  if (configuration.webhooks.every((hook) => hook.caBundle === bundle))
    return { changed: false, line: `caBundle: unchanged (${trust})` }
  await patchCaBundle(client, configuration, bundle)
  const dropped = plan.dropped === '' ? '' : `; dropped ${plan.dropped}`
  return {
    changed: true,
    line: `caBundle: set on ${configuration.webhooks.length} webhook(s) of MutatingWebhookConfiguration ${configuration.name} (${trust}${dropped})`,
  }
}

/** Step 3: the serving certificate kept, or issued by the CA caBundle now trusts and written. */
async function ensureServing(
  client: KubeClient,
  target: Target,
  step: ServingStep,
  state: SecretState,
  ca: KeyPairPem,
  policy: CertsOptions['policy'],
  now: number,
): Promise<string> {
  const where = `Secret ${target.namespace}/${target.servingSecret}`
  if (step.action === 'keep') {
    const renew = new Date(step.notAfter.getTime() - policy.renewBeforeDays * 86_400_000)
    return `serving certificate: kept (${where}, expires ${day(step.notAfter)}, renewed from ${day(renew)})`
  }
  const pair = await issueServing(ca, target.names, now, policy.days)
  const data = { 'tls.crt': pair.cert, 'tls.key': pair.key }
  await writeSecret(
    client,
    target.namespace,
    target.servingSecret,
    'kubernetes.io/tls',
    data,
    state,
  )
  const pickup =
    target.mode === 'classic' ? 'the pods reload it by themselves' : 'Kourier picks it up by itself'
  return `serving certificate: issued in ${where} (${step.reason}), valid ${policy.days} days; ${pickup}`
}

async function runOnce(
  client: KubeClient,
  options: CertsOptions,
  now: number,
): Promise<Done | NotOurs> {
  const target = await locate(client, options)
  const { configuration, names, namespace } = target
  const [ca, serving] = await Promise.all([
    readSecret(client, namespace, target.caSecret),
    readSecret(client, namespace, target.servingSecret),
  ])
  const caBundles = configuration.webhooks.map((hook) => hook.caBundle)
  const plan = planCertificates({ ca, serving, caBundles }, { ...options.policy, names }, now)
  if (plan.kind === 'foreign') return { kind: 'not-ours', secrets: plan.secrets }
  const listed = names.map((name) => name.value).join(', ')
  const first = `mode ${target.mode}: MutatingWebhookConfiguration ${configuration.name} calls ${target.what}; certificate for ${listed}`
  const caDone = await ensureCa(client, target, plan.ca, ca, options.policy, now)
  const bundleDone = await ensureBundle(client, target, plan, caDone.pair)
  const servingLine = await ensureServing(
    client,
    target,
    plan.serving,
    serving,
    caDone.pair,
    options.policy,
    now,
  )
  const issued = plan.serving.action === 'issue'
  return {
    kind: 'done',
    names: listed,
    servingSecret: target.servingSecret,
    lines: [first, caDone.line, bundleDone.line, servingLine],
    changed: plan.ca.action !== 'keep' || bundleDone.changed || issued,
    issued,
  }
}

/** Runs until a pass ends without a write conflict (at most {@link MAX_ATTEMPTS}). */
async function reconcile(
  client: KubeClient,
  options: CertsOptions,
  io: Io,
  clock: () => number,
): Promise<Done | NotOurs> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runOnce(client, options, clock())
    } catch (error) {
      if (!(error instanceof Conflict)) throw error
      if (attempt === MAX_ATTEMPTS)
        throw new ClusterError(`still conflicting after ${MAX_ATTEMPTS} attempts: ${error.message}`)
      io.err(`irsa-webhook certs: ${error.message}; another writer was first, reading again\n`)
    }
  }
}

/** Records an Event (with --job); a failure to record it is said on stderr, never fails the run. */
async function report(
  client: KubeClient,
  io: Io,
  namespace: string,
  secret: string,
  event: { type: 'Normal' | 'Warning'; reason: string; message: string },
): Promise<void> {
  const failed = await recordSecretEvent(
    client,
    namespace,
    secret,
    event.type,
    event.reason,
    event.message,
  )
  if (failed !== undefined) io.err(`irsa-webhook certs: could not record an Event: ${failed}\n`)
}

async function reportNotOurs(
  client: KubeClient,
  io: Io,
  options: CertsOptions,
  result: NotOurs,
): Promise<number> {
  const names = result.secrets.map((s) => `${options.namespace}/${s}`).join(' and ')
  const message = `Secret ${names} exists without the label ${MANAGED_BY.key}=${MANAGED_BY.value}: made by something else (cert-manager, an older generate-certs.sh, by hand), so it is left alone and nothing was written. To let irsa-webhook certs manage it, delete it or add the label.`
  io.err(`irsa-webhook certs: ${message}\n`)
  if (!options.job) return CERTS_EXIT.notOurs
  for (const secret of result.secrets)
    await report(client, io, options.namespace, secret, {
      type: 'Warning',
      reason: 'SecretNotManaged',
      message,
    })
  return CERTS_EXIT.ok
}

/** Options for tests: the clock (ms since the epoch). */
export interface CertsDeps {
  readonly now?: () => number
}

export async function runCerts(argv: string[], io: Io, deps: CertsDeps = {}): Promise<number> {
  const options = parseOptions(argv)
  if (options === 'help') {
    io.out(`${CERTS_USAGE}\n`)
    return CERTS_EXIT.ok
  }
  let client: KubeClient
  let result: Done | NotOurs
  try {
    client = createKubeClient(loadKubeConfig(options.kubeconfig))
    result = await reconcile(client, options, io, deps.now ?? Date.now)
  } catch (error) {
    io.err(`irsa-webhook certs: could not do its work: ${(error as Error).message}\n`)
    return CERTS_EXIT.failed
  }
  if (result.kind === 'not-ours') return reportNotOurs(client, io, options, result)
  io.out(`${result.lines.join('\n')}\n${result.changed ? 'done' : 'nothing to do'}\n`)
  if (options.job && result.issued)
    await report(client, io, options.namespace, result.servingSecret, {
      type: 'Normal',
      reason: 'CertificateIssued',
      message: `irsa-webhook certs issued a certificate for ${result.names}`,
    })
  return CERTS_EXIT.ok
}
