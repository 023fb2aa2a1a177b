import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** What a leaf certificate is issued for. */
export interface CertificateOptions {
  dnsNames: string[]
  ipAddresses?: string[]
  /** File stem inside the directory: `<name>.crt` and `<name>.key`. Defaults to `tls`. */
  name?: string
  /** openssl `-subj`, e.g. `/O=system:masters/CN=admin`; defaults to `/CN=<first name>`. */
  subject?: string
  /** `client` issues a clientAuth certificate (no names needed) instead of a serverAuth one. */
  usage?: 'server' | 'client'
}

export interface LeafCertificate {
  certPem: string
  keyPem: string
  certPath: string
  keyPath: string
}

export interface TestCertificates extends LeafCertificate {
  caPem: string
  dir: string
  caPath: string
}

const CA_CERT = 'ca.crt'
const CA_KEY = 'ca.key'

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

function newKeyArgs(keyPath: string): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath]
}

function serial(): string {
  return `0x${randomBytes(16).toString('hex').replace(/^./, '1')}`
}

/** Writes a throwaway CA (`ca.crt`, `ca.key`, EC P-256, valid 2 days) into `dir`, for writeCertificate. */
export function createCertificateAuthority(dir: string): void {
  openssl(
    [
      'req',
      '-x509',
      ...newKeyArgs(CA_KEY),
      '-out',
      CA_CERT,
      '-subj',
      '/CN=irsa-webhook-test-ca',
      '-days',
      '2',
      '-set_serial',
      serial(),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  )
}

function extensions(options: CertificateOptions): string {
  if (options.usage === 'client')
    return [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=clientAuth',
      '',
    ].join('\n')
  const sans = [
    ...options.dnsNames.map((name) => `DNS:${name}`),
    ...(options.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ]
  if (sans.length === 0) throw new Error('a test certificate needs at least one DNS name or IP')
  return [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${sans.join(',')}`,
    '',
  ].join('\n')
}

/**
 * Issue a leaf certificate signed by the CA already in `dir` (made by createTestCertificates).
 * Files are written under temporary names and renamed into place, so a reader watching
 * `<name>.crt`/`<name>.key` never sees a half-written file: use this for rotation tests.
 */
export function writeCertificate(dir: string, options: CertificateOptions): LeafCertificate {
  const name = options.name ?? 'tls'
  const stem = `${name}.${randomBytes(4).toString('hex')}`
  const subject =
    options.subject ?? `/CN=${options.dnsNames[0] ?? options.ipAddresses?.[0] ?? 'test'}`
  writeFileSync(join(dir, `${stem}.ext`), extensions(options))
  openssl(
    ['req', '-new', ...newKeyArgs(`${stem}.key`), '-out', `${stem}.csr`, '-subj', subject],
    dir,
  )
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${stem}.csr`,
      '-CA',
      CA_CERT,
      '-CAkey',
      CA_KEY,
      '-set_serial',
      serial(),
      '-days',
      '2',
      '-extfile',
      `${stem}.ext`,
      '-out',
      `${stem}.crt`,
    ],
    dir,
  )
  const certPath = join(dir, `${name}.crt`)
  const keyPath = join(dir, `${name}.key`)
  renameSync(join(dir, `${stem}.key`), keyPath)
  renameSync(join(dir, `${stem}.crt`), certPath)
  rmSync(join(dir, `${stem}.csr`), { force: true })
  rmSync(join(dir, `${stem}.ext`), { force: true })
  return {
    certPem: readFileSync(certPath, 'utf8'),
    keyPem: readFileSync(keyPath, 'utf8'),
    certPath,
    keyPath,
  }
}

/**
 * Make a throwaway CA and a serverAuth leaf (EC P-256, valid 2 days) in a new temp dir with
 * the openssl CLI. Remove `dir` when done (`rmSync(dir, { recursive: true, force: true })`).
 */
export function createTestCertificates(options: CertificateOptions): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'irsa-test-tls-'))
  try {
    createCertificateAuthority(dir)
    const leaf = writeCertificate(dir, options)
    const caPath = join(dir, CA_CERT)
    return {
      ...leaf,
      dir,
      caPath,
      caPem: readFileSync(caPath, 'utf8'),
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}
