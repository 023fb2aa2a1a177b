/**
 * The decisions of `irsa-webhook certs`, from what the cluster holds now: keep or make the CA, keep or issue the
 * serving certificate, and which CAs the webhook's caBundle trusts. No I/O: certs.ts reads the state, asks
 * `planCertificates`, then makes what it says in an order that never leaves the webhook without a trusted
 * certificate (see `writeOrder` in certs.ts).
 *
 * Ownership: a Secret carries {@link MANAGED_BY} when this command (or generate-certs.sh, which writes the same
 * label) made it. A Secret of ours without the label — made by cert-manager, by hand, by another tool — is never
 * written: the plan is then `foreign` and nothing changes.
 * @module
 */
import type { X509Certificate } from 'node:crypto'
import { keyMatches, parseBundle, type SanName, sanEntries, sanText, signedBy } from './x509.ts'

const DAY_MS = 86_400_000

/** The ownership marker on both Secrets: the label key and value. */
export const MANAGED_BY = {
  key: 'app.kubernetes.io/managed-by',
  value: 'irsa-webhook-certs',
} as const

/** A Secret as read: absent, someone else's, or ours (its data decoded to text). */
export type SecretState =
  | { readonly kind: 'absent' }
  | { readonly kind: 'foreign'; readonly name: string }
  | {
      readonly kind: 'ours'
      readonly name: string
      readonly resourceVersion: string
      readonly data: Readonly<Record<string, string>>
      /** Kept on a replace: labels and annotations others put there (e.g. Kourier's certificate-uid label). */
      readonly labels?: Readonly<Record<string, string>>
      readonly annotations?: Readonly<Record<string, string>>
    }

export interface Observed {
  readonly ca: SecretState
  readonly serving: SecretState
  /** Each webhook's caBundle, decoded ('' when unset). */
  readonly caBundles: readonly string[]
}

export interface Policy {
  /** The names the serving certificate carries: the one the API server checks first. */
  readonly names: readonly SanName[]
  /** Validity of a new serving certificate, in days. */
  readonly days: number
  /** Validity of a new CA, in days. */
  readonly caDays: number
  /** A serving certificate with less than this left is renewed; a CA with less than `days` + this is replaced. */
  readonly renewBeforeDays: number
  /** Make a new CA even when the current one is fine. */
  readonly rotateCa: boolean
  /**
   * How long CAs other than the current one stay in caBundle after the serving certificate was issued by the
   * current CA: the pods and Kourier pick up a new Secret within minutes, and until then serve the old one.
   */
  readonly overlapMs: number
}

export type CaStep =
  | { readonly action: 'keep'; readonly cert: string; readonly key: string }
  | { readonly action: 'create' | 'replace'; readonly reason: string }
export type ServingStep =
  | { readonly action: 'keep'; readonly notAfter: Date }
  | { readonly action: 'issue'; readonly reason: string }

export type Plan =
  | { readonly kind: 'foreign'; readonly secrets: readonly string[] }
  | {
      readonly kind: 'apply'
      readonly ca: CaStep
      readonly serving: ServingStep
      /** The CAs after the current one in caBundle (PEM), kept through a rotation. */
      readonly previous: readonly string[]
      /** Why `previous` is empty although caBundle has other CAs ('' when nothing was dropped). */
      readonly dropped: string
    }

const daysLeft = (cert: X509Certificate, now: number): number =>
  (new Date(cert.validTo).getTime() - now) / DAY_MS
const date = (cert: X509Certificate): string => new Date(cert.validTo).toISOString().slice(0, 10)

function parse(pem: string | undefined): X509Certificate | undefined {
  return pem === undefined ? undefined : parseBundle(pem)[0]
}

/** Keep the CA, or why it must be made (again). */
export function decideCa(state: SecretState, policy: Policy, now: number): CaStep {
  if (state.kind !== 'ours') return { action: 'create', reason: 'no CA yet' }
  const cert = parse(state.data['ca.crt'])
  const key = state.data['ca.key'] ?? ''
  const replace = (reason: string): CaStep => ({ action: 'replace', reason })
  if (cert === undefined) return replace(`Secret ${state.name} has no readable ca.crt`)
  if (!cert.ca || !keyMatches(cert, key))
    return replace(`Secret ${state.name} does not hold a CA and its key`)
  if (policy.rotateCa) return replace('--rotate-ca')
  const needed = policy.days + policy.renewBeforeDays
  if (daysLeft(cert, now) < needed)
    return replace(
      `the CA expires on ${date(cert)}, less than ${needed} days away (--days + --renew-before)`,
    )
  return { action: 'keep', cert: state.data['ca.crt'] ?? '', key }
}

/** Keep the serving certificate, or why a new one is issued. `ca` is the CA kept (undefined: a new CA). */
export function decideServing(
  state: SecretState,
  ca: X509Certificate | undefined,
  policy: Policy,
  now: number,
): ServingStep {
  const issue = (reason: string): ServingStep => ({ action: 'issue', reason })
  if (ca === undefined) return issue('the CA is new')
  if (state.kind !== 'ours') return issue('no serving certificate yet')
  const cert = parse(state.data['tls.crt'])
  if (cert === undefined) return issue(`Secret ${state.name} has no readable tls.crt`)
  if (!keyMatches(cert, state.data['tls.key'] ?? ''))
    return issue(`tls.key in Secret ${state.name} is not the key of tls.crt`)
  if (!signedBy(cert, ca)) return issue('the certificate is not signed by the current CA')
  const want = policy.names.map(sanText)
  const have = sanEntries(cert)
  if (have.length !== want.length || want.some((name) => !have.includes(name)))
    return issue(
      `the certificate names ${have.join(', ') || 'nothing'}; expected ${want.join(', ')}`,
    )
  if (new Date(cert.validFrom).getTime() > now) return issue('the certificate is not valid yet')
  if (daysLeft(cert, now) < policy.renewBeforeDays)
    return issue(
      `the certificate expires on ${date(cert)}, within ${policy.renewBeforeDays} days (--renew-before)`,
    )
  return { action: 'keep', notAfter: new Date(cert.validTo) }
}

/**
 * The CAs to keep in caBundle after the current one: those of today's caBundle that are not the current CA and
 * not expired, while the serving certificate is new (issued by this run, or less than `overlapMs` ago); after that,
 * none. A CA rotation thus adds the new CA beside the old one before the new certificate is written, and a later
 * run drops the old CA once every server has long had the new certificate.
 */
export function previousCas(
  caBundles: readonly string[],
  current: X509Certificate | undefined,
  servingIssuedAt: number,
  policy: Policy,
  now: number,
): { previous: string[]; dropped: string } {
  const seen = new Set<string>(current === undefined ? [] : [current.fingerprint256])
  const others: X509Certificate[] = []
  for (const cert of caBundles.flatMap(parseBundle)) {
    if (seen.has(cert.fingerprint256)) continue
    seen.add(cert.fingerprint256)
    if (daysLeft(cert, now) > 0) others.push(cert)
  }
  if (others.length === 0) return { previous: [], dropped: '' }
  if (now - servingIssuedAt < policy.overlapMs)
    return { previous: others.map((cert) => cert.toString()), dropped: '' }
  const hours = Math.round(policy.overlapMs / 3_600_000)
  return {
    previous: [],
    dropped: `${others.length} previous CA(s): the serving certificate of the current CA is older than ${hours} h`,
  }
}

/** The whole decision. `now` in ms since the epoch. */
export function planCertificates(observed: Observed, policy: Policy, now: number): Plan {
  const foreign = [observed.ca, observed.serving].flatMap((s) =>
    s.kind === 'foreign' ? [s.name] : [],
  )
  if (foreign.length > 0) return { kind: 'foreign', secrets: foreign }
  const ca = decideCa(observed.ca, policy, now)
  const caCert = ca.action === 'keep' ? parse(ca.cert) : undefined
  const serving = decideServing(observed.serving, caCert, policy, now)
  const issuedAt =
    serving.action === 'issue' || observed.serving.kind !== 'ours'
      ? now
      : new Date(parse(observed.serving.data['tls.crt'])?.validFrom ?? now).getTime()
  const { previous, dropped } = previousCas(observed.caBundles, caCert, issuedAt, policy, now)
  return { kind: 'apply', ca, serving, previous, dropped }
}

/** The caBundle text for `currentCa` (PEM) followed by `previous`: every certificate on its own lines. */
export function bundleText(currentCa: string, previous: readonly string[]): string {
  return [currentCa, ...previous].map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)).join('')
}
