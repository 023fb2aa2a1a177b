/**
 * Doctor checks on the serving certificate: the webhook's caBundle verifies it, it names `<svc>.<ns>.svc`, and
 * how long it has left. The certificate is read from its Secret (classic: irsa-webhook-certs; Knative: the
 * DomainMapping's tls.secretName).
 * @module
 */
import { X509Certificate } from 'node:crypto'
import { getObject } from '../shared/kube.ts'
import {
  type CheckResult,
  type DoctorContext,
  fail,
  pass,
  serviceHost,
  skip,
  warn,
} from './context.ts'
import { domainMappingPath } from './knative.ts'

const CERT_PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g
const DAY_MS = 86_400_000
const WARN_DAYS = 30

/** Every certificate in a PEM text (a bundle or a chain). */
export function parseCertificates(pem: string): X509Certificate[] {
  return (pem.match(CERT_PEM) ?? []).map((block) => new X509Certificate(block))
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey)
}

/** True when the leaf (first of `chain`) leads, through the chain's intermediates, to a certificate in `roots`. */
export function chainVerifies(
  chain: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): boolean {
  let current = chain[0]
  for (let hops = 0; current !== undefined && hops < 8; hops += 1) {
    const cert: X509Certificate = current
    if (roots.some((root) => root.fingerprint256 === cert.fingerprint256 || signedBy(cert, root)))
      return true
    current = chain.slice(1).find((candidate) => candidate !== cert && signedBy(cert, candidate))
  }
  return false
}

/** Days until `cert` expires (negative when expired). */
function daysLeft(cert: X509Certificate, now: number): number {
  return Math.floor((new Date(cert.validTo).getTime() - now) / DAY_MS)
}

async function secretName(context: DoctorContext, host: string): Promise<string> {
  if (context.tlsSecret !== undefined) return context.tlsSecret
  if (context.mode === 'classic') return 'irsa-webhook-certs'
  const got = await getObject(context, domainMappingPath(context.namespace, host))
  const spec = 'found' in got ? (got.found['spec'] as { tls?: { secretName?: string } }) : undefined
  return spec?.tls?.secretName ?? 'irsa-webhook-tls'
}

const NAMES = [
  'caBundle verifies the serving certificate',
  'certificate name',
  'certificate expiry',
]

async function readLeafChain(context: DoctorContext, host: string) {
  const secret = await secretName(context, host)
  const where = `Secret ${context.namespace}/${secret}`
  const got = await getObject(context, `/api/v1/namespaces/${context.namespace}/secrets/${secret}`)
  if (!('found' in got)) return { where, error: 'missing' in got ? 'not found' : got.error }
  const data = (got.found['data'] ?? {}) as Record<string, string>
  const chain = parseCertificates(Buffer.from(data['tls.crt'] ?? '', 'base64').toString('utf8'))
  if (chain.length === 0) return { where, error: 'has no certificate in tls.crt' }
  return { where, chain }
}

/** The three certificate checks; the first fails (and the others skip) when the certificate cannot be read. */
export async function checkCertificate(
  context: DoctorContext,
  now = Date.now(),
): Promise<CheckResult[]> {
  const service = context.webhook?.clientConfig?.service
  if (service === undefined) return NAMES.map((name) => skip(name, 'no webhook Service'))
  const host = serviceHost(service)
  // The bundles' renew CronJob (deploy/components/certs) re-issues and re-patches now; generate-certs.sh without it.
  const regenerate = `kubectl -n ${context.namespace} create job --from=cronjob/irsa-webhook-certs-renew renew-now, or ./generate-certs.sh --mode ${context.mode}`
  const read = await readLeafChain(context, host)
  if (read.chain === undefined) {
    const first = fail(NAMES[0] ?? '', `${read.where}: ${read.error}`, regenerate)
    return [first, ...NAMES.slice(1).map((name) => skip(name, 'no certificate'))]
  }
  const roots = parseCertificates(
    Buffer.from(context.webhook?.clientConfig?.caBundle ?? '', 'base64').toString('utf8'),
  )
  return [
    bundleResult(read.where, read.chain, roots, regenerate),
    nameResult(read.chain, host, regenerate),
    expiryResult(read.chain, now, regenerate),
  ]
}

function bundleResult(
  where: string,
  chain: X509Certificate[],
  roots: X509Certificate[],
  fix: string,
) {
  const name = NAMES[0] ?? ''
  if (roots.length === 0) return fail(name, 'the webhook has no caBundle', fix)
  if (chainVerifies(chain, roots)) return pass(name, `${where} is signed by the caBundle`)
  return fail(
    name,
    `${where} is not signed by any of the ${roots.length} caBundle certificate(s): the API server gets x509 errors`,
    `${fix} (it updates both), then restart the webhook`,
  )
}

function nameResult(chain: X509Certificate[], host: string, fix: string) {
  const name = NAMES[1] ?? ''
  const leaf = chain[0]
  if (leaf?.checkHost(host, { subject: 'never' }) !== undefined)
    return pass(name, `SAN has ${host}`)
  return fail(name, `SAN ${leaf?.subjectAltName ?? '(none)'} lacks ${host}`, fix)
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

function expiryResult(chain: X509Certificate[], now: number, fix: string) {
  const name = NAMES[2] ?? ''
  const leaf = chain[0]
  if (leaf === undefined) return skip(name, 'no certificate')
  const days = daysLeft(leaf, now)
  if (new Date(leaf.validFrom).getTime() > now)
    return fail(name, `not valid before ${leaf.validFrom}`, fix)
  if (days < 0) return fail(name, `expired on ${leaf.validTo}`, fix)
  if (days < WARN_DAYS)
    return warn(name, `expires in ${plural(days, 'day')} (${leaf.validTo})`, fix)
  return pass(name, `${plural(days, 'day')} left (until ${leaf.validTo})`)
}
