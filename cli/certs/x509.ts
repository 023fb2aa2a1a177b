/**
 * The certificates `irsa-webhook certs` makes, built with @peculiar/x509 on Node's WebCrypto (no hand-built DER):
 * the same shapes generate-certs.sh makes with openssl, so either tool can renew what the other made.
 *
 * - CA: ECDSA P-256, SHA-256, subject `CN=irsa-webhook-ca`, basicConstraints critical CA:TRUE pathlen:0, keyUsage
 *   critical keyCertSign + cRLSign, subjectKeyIdentifier.
 * - Serving certificate: ECDSA P-256, SHA-256, subject `CN=<host>`, SAN `DNS:<host>, DNS:<host>.cluster.local` for
 *   a Service's host (an IP address or DNS name alone for a webhook called by URL),
 *   extendedKeyUsage serverAuth, keyUsage critical digitalSignature + keyEncipherment, basicConstraints critical
 *   CA:FALSE, subject and authority key identifiers, a random 16-byte serial.
 * - Keys: PKCS#8 PEM (`BEGIN PRIVATE KEY`), as `openssl genpkey` writes them.
 *
 * Reading is Node's own `crypto.X509Certificate`.
 * @module
 */
import 'reflect-metadata' // @peculiar/x509 resolves its services with tsyringe, which needs the Reflect metadata API
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'

type CryptoKey = webcrypto.CryptoKey
/** Node's WebCrypto, as the DOM `Crypto` type @peculiar/x509 declares (the same API; Node's types name it apart). */
const crypto = webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGNING = { ...EC, hash: 'SHA-256' } as const
const DAY_MS = 86_400_000
/** notBefore is set this far in the past, so a node whose clock is a little behind the Job's accepts the certificate. */
const BACKDATE_MS = 60_000

export const CA_SUBJECT = 'CN=irsa-webhook-ca'

/** A certificate and its private key, both PEM. */
export interface KeyPairPem {
  readonly cert: string
  readonly key: string
}

/** One subjectAltName entry. */
export interface SanName {
  readonly type: 'dns' | 'ip'
  readonly value: string
}

/** The names of a certificate for a Service's host `<name>.<namespace>.svc` (what the API server checks) and its FQDN. */
export const serviceNames = (host: string): readonly SanName[] => [
  { type: 'dns', value: host },
  { type: 'dns', value: `${host}.cluster.local` },
]

/** An entry as Node's `X509Certificate.subjectAltName` writes it: `DNS:name` or `IP Address:1.2.3.4`. */
export const sanText = (name: SanName): string =>
  `${name.type === 'dns' ? 'DNS' : 'IP Address'}:${name.value}`

/** A positive serial of 16 random bytes (the top bit cleared, so DER does not read it as negative). */
function serial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] ?? 0) & 0x7f
  return bytes.toString('hex')
}

const withNewline = (pem: string): string => (pem.endsWith('\n') ? pem : `${pem}\n`)

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(SIGNING, true, ['sign', 'verify'])
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return withNewline(
    x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY'),
  )
}

function validity(now: number, days: number) {
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) }
}

/** A new self-signed CA valid `days` days from `now`. */
export async function makeCa(now: number, days: number): Promise<KeyPairPem> {
  const keys = await newKeys()
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: CA_SUBJECT,
      ...validity(now, days),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  )
  return { cert: withNewline(cert.toString('pem')), key: await privateKeyPem(keys.privateKey) }
}

/** The CA key as a WebCrypto signing key; PKCS#8 or SEC1 PEM, ECDSA P-256 only. */
async function signingKey(keyPem: string): Promise<CryptoKey> {
  const key = createPrivateKey(keyPem)
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('the CA key is not an ECDSA P-256 key')
  }
  const der = key.export({ type: 'pkcs8', format: 'der' })
  return webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign'])
}

/** A serving certificate for `names` (the first is the subject's CN), signed by `ca`, valid `days` days from `now`. */
export async function issueServing(
  ca: KeyPairPem,
  names: readonly SanName[],
  now: number,
  days: number,
): Promise<KeyPairPem> {
  const keys = await newKeys()
  const issuer = new x509.X509Certificate(ca.cert)
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `CN=${names[0]?.value ?? ''}`,
      issuer: issuer.subject,
      ...validity(now, days),
      publicKey: keys.publicKey,
      signingKey: await signingKey(ca.key),
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.SubjectAlternativeNameExtension(names.map(({ type, value }) => ({ type, value }))),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey, false, crypto),
      ],
    },
    crypto,
  )
  return { cert: withNewline(cert.toString('pem')), key: await privateKeyPem(keys.privateKey) }
}

/** Every certificate in a PEM bundle; text that is not a certificate is left out. */
export function parseBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  return blocks.flatMap((block) => {
    try {
      return [new X509Certificate(block)]
    } catch {
      return []
    }
  })
}

/** A certificate's subjectAltName entries, in order, as {@link sanText} writes them. */
export function sanEntries(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(', ').filter((entry) => entry !== '')
}

/** Whether `key` (PEM) is the private key of `cert`; false when it cannot be read. */
export function keyMatches(cert: X509Certificate, key: string): boolean {
  try {
    return cert.checkPrivateKey(createPrivateKey(key))
  } catch {
    return false
  }
}

/** Whether `cert` was issued and signed by `ca`. */
export const signedBy = (cert: X509Certificate, ca: X509Certificate): boolean =>
  cert.checkIssued(ca) && cert.verify(ca.publicKey)
