// A loopback STS-compatible server, faithful to the STS Query protocol (2011-06-15) for
// AssumeRoleWithWebIdentity, validating the web identity token the way Vultr's STS does.
import { randomBytes, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createLocalJWKSet, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose'
import type { Jwks } from './jwt.ts'

/** Vultr's STS-compatible endpoint path; SDKs may append a trailing `/`. */
export const VULTR_STS_PATH = '/v2/assumed-roles/compatibility/aws/sts'
const NS = 'https://sts.amazonaws.com/doc/2011-06-15/'

export interface FakeStsOptions {
  jwks: Jwks
  issuer: string
  /** Known role UUIDs; RoleArn may be the bare UUID or `arn:…:role/<uuid>`. */
  roles: string[]
}

export interface IssuedCredentials {
  AccessKeyId: string
  SecretAccessKey: string
  SessionToken: string
  Expiration: string
}

export interface StsRequest {
  method: string
  path: string
  contentType: string
  params: Record<string, string>
  status: number
  errorCode?: string
  credentials?: IssuedCredentials
}

export interface FakeSts {
  /** Base URL (`http://127.0.0.1:<port>`) without the path. */
  url: string
  /** The full endpoint to put in AWS_ENDPOINT_URL_STS. */
  endpoint: string
  requests: StsRequest[]
  close: () => Promise<void>
}

class StsError extends Error {
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

const esc = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`)

function errorXml(code: string, message: string, requestId: string): string {
  return `<ErrorResponse xmlns="${NS}">
  <Error>
    <Type>Sender</Type>
    <Code>${esc(code)}</Code>
    <Message>${esc(message)}</Message>
  </Error>
  <RequestId>${requestId}</RequestId>
</ErrorResponse>
`
}

function successXml(
  c: IssuedCredentials,
  claims: JWTPayload,
  role: string,
  session: string,
  id: string,
) {
  const aud = Array.isArray(claims.aud) ? (claims.aud[0] ?? '') : (claims.aud ?? '')
  return `<AssumeRoleWithWebIdentityResponse xmlns="${NS}">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>${esc(claims.sub ?? '')}</SubjectFromWebIdentityToken>
    <Audience>${esc(aud)}</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::000000000000:assumed-role/${esc(role)}/${esc(session)}</Arn>
      <AssumedRoleId>AROAFAKESTS${role.slice(0, 8).toUpperCase()}:${esc(session)}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>${c.AccessKeyId}</AccessKeyId>
      <SecretAccessKey>${c.SecretAccessKey}</SecretAccessKey>
      <SessionToken>${c.SessionToken}</SessionToken>
      <Expiration>${c.Expiration}</Expiration>
    </Credentials>
    <Provider>${esc(claims.iss ?? '')}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>${id}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
`
}

/** Accepts the bare role UUID or an ARN whose resource is `role/<uuid>`. */
function roleIdFromArn(roleArn: string): string {
  if (!roleArn.startsWith('arn:')) return roleArn
  const resource = roleArn.split(':').slice(5).join(':')
  return resource.startsWith('role/') ? (resource.split('/').pop() ?? '') : ''
}

function required(params: Record<string, string>, name: string): string {
  const value = params[name]
  if (value === undefined || value === '') {
    throw new StsError(400, 'MissingParameter', `The request must contain the parameter ${name}`)
  }
  return value
}

function durationOf(params: Record<string, string>): number {
  const raw = params['DurationSeconds']
  if (raw === undefined) return 3600
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 900 || n > 43200) {
    throw new StsError(400, 'ValidationError', 'DurationSeconds must be between 900 and 43200')
  }
  return n
}

async function verifyToken(token: string, o: FakeStsOptions): Promise<JWTPayload> {
  const keys = createLocalJWKSet(o.jwks)
  const audience = 'vultr'
  try {
    const { payload } = await jwtVerify(token, keys, {
      algorithms: ['RS256'],
      issuer: o.issuer,
      audience,
    })
    return payload
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) {
      throw new StsError(400, 'ExpiredTokenException', 'Token is expired')
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') {
      throw new StsError(400, 'InvalidIdentityToken', 'Incorrect token audience')
    }
    const detail = err instanceof Error ? err.message : String(err)
    throw new StsError(400, 'InvalidIdentityToken', `Token validation failed: ${detail}`)
  }
}

function newCredentials(seconds: number): IssuedCredentials {
  return {
    AccessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
    SecretAccessKey: randomBytes(30).toString('base64'),
    SessionToken: randomBytes(48).toString('base64'),
    Expiration: new Date(Date.now() + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  }
}

async function assume(
  params: Record<string, string>,
  o: FakeStsOptions,
  id: string,
  rec: StsRequest,
) {
  const action = required(params, 'Action')
  if (action !== 'AssumeRoleWithWebIdentity' && action !== 'AssumeRole') {
    throw new StsError(
      400,
      'InvalidAction',
      `Could not find operation ${action} for version 2011-06-15`,
    )
  }
  if (params['Version'] !== '2011-06-15') {
    throw new StsError(400, 'InvalidParameterValue', 'Version must be 2011-06-15')
  }
  if (action === 'AssumeRole') {
    throw new StsError(
      403,
      'AccessDenied',
      'The fake STS only implements AssumeRoleWithWebIdentity',
    )
  }
  const roleArn = required(params, 'RoleArn')
  const session = required(params, 'RoleSessionName')
  const seconds = durationOf(params)
  const claims = await verifyToken(required(params, 'WebIdentityToken'), o)
  const role = roleIdFromArn(roleArn)
  if (!o.roles.includes(role)) {
    throw new StsError(
      403,
      'AccessDenied',
      'Not authorized to perform sts:AssumeRoleWithWebIdentity',
    )
  }
  rec.credentials = newCredentials(seconds)
  return successXml(rec.credentials, claims, role, session, id)
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  o: FakeStsOptions,
  log: StsRequest[],
) {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1')
  const base = VULTR_STS_PATH
  const params = Object.fromEntries(url.searchParams)
  const contentType = req.headers['content-type'] ?? ''
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    Object.assign(params, Object.fromEntries(new URLSearchParams(await readBody(req))))
  }
  const rec: StsRequest = {
    method: req.method ?? '',
    path: url.pathname,
    contentType,
    params,
    status: 200,
  }
  log.push(rec)
  const id = randomUUID()
  let body: string
  try {
    if (url.pathname !== base && url.pathname !== `${base}/`) {
      throw new StsError(404, 'NotFound', `No route for ${url.pathname}`)
    }
    body = await assume(params, o, id, rec)
  } catch (err) {
    const e = err instanceof StsError ? err : new StsError(500, 'InternalFailure', String(err))
    rec.status = e.status
    rec.errorCode = e.code
    body = errorXml(e.code, e.message, id)
  }
  res.writeHead(rec.status, { 'content-type': 'text/xml', 'x-amzn-requestid': id })
  res.end(body)
}

export async function startFakeSts(options: FakeStsOptions): Promise<FakeSts> {
  const requests: StsRequest[] = []
  const server = createServer((req, res) => {
    handle(req, res, options, requests).catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return { url, endpoint: `${url}${VULTR_STS_PATH}`, requests, close }
}
