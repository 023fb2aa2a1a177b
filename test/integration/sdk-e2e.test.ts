// End to end: webhook review → injected env + token mount → the real AWS SDK for JavaScript v3 →
// a loopback STS-compatible server that validates the token like Vultr's STS.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  AssumeRoleWithWebIdentityCommand,
  GetCallerIdentityCommand,
  STSClient,
} from '@aws-sdk/client-sts'
import { type FakeSts, startFakeSts, VULTR_STS_PATH } from '../support/fake-sts.ts'
import { loadJson } from '../support/fixtures.ts'
import { createSigningKey, type SigningKey, signServiceAccountToken } from '../support/jwt.ts'
import { ROOT } from '../support/process.ts'
import { admit } from '../support/webhook.ts'

const ISSUER = 'https://oidc.vke.example.test/e2e-cluster'
const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const NAMESPACE = 'e2e-cf073f76'
const SA = 'irsa-sa'

// Runs in a child `node` (the same Node 24 binary as this test) whose env is exactly what we pass.
// Egress guard: every socket connect to anything but loopback is refused before DNS and reported on
// stdout, so no request can leave the machine even if the SDK heads for *.amazonaws.com or IMDS;
// the child env also has no proxy variables and HOME is an empty directory (no ~/.aws config).
const SDK_SCRIPT = `
import net from 'node:net'
const loopback = new Set(['127.0.0.1', 'localhost', '::1'])
const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (...args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0]
  const host = typeof first === 'object' ? (first.path ? 'localhost' : (first.host ?? 'localhost'))
    : (typeof args[1] === 'string' ? args[1] : 'localhost')
  if (loopback.has(host)) return connect.apply(this, args)
  console.log(JSON.stringify({ blocked: host }))
  process.nextTick(() => this.destroy(new Error('egress blocked by test guard: ' + host)))
  return this
}
const { fromNodeProviderChain, fromTokenFile } = await import('@aws-sdk/credential-providers')
const provider = process.argv[1] === 'chain' ? fromNodeProviderChain() : fromTokenFile()
try {
  const c = await provider()
  console.log(JSON.stringify({ ok: true, credentials: { ...c, expiration: c.expiration?.toISOString() } }))
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, code: e.Code, message: e.message, status: e.$metadata?.httpStatusCode }))
}
`

interface SdkResult {
  ok: boolean
  credentials?: Record<string, unknown>
  name?: string
  code?: string
  message?: string
  status?: number
  blocked: string[]
}

function runSdk(provider: 'tokenFile' | 'chain', env: Record<string, string>): Promise<SdkResult> {
  const args = ['--input-type=module', '-e', SDK_SCRIPT, provider]
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { env, cwd: ROOT, timeout: 45_000 },
      (error, stdout, stderr) => {
        const lines = stdout.trim().split('\n').filter(Boolean)
        const blocked = lines.flatMap((l) => {
          const v = JSON.parse(l) as { blocked?: string }
          return v.blocked === undefined ? [] : [v.blocked]
        })
        const last = lines.at(-1)
        if (error !== null || last === undefined)
          return reject(new Error(`sdk child: ${error} ${stderr}`))
        resolve({ ...(JSON.parse(last) as Omit<SdkResult, 'blocked'>), blocked })
      },
    )
  })
}

const readJson = (name: string): unknown => loadJson(`admission/${name}`)

interface EnvVar {
  name: string
  value?: string
}
interface Mount {
  name: string
  mountPath: string
  readOnly?: boolean
}
interface TokenSource {
  audience: string
  expirationSeconds: number
  path: string
}
interface Volume {
  name: string
  projected?: { sources?: { serviceAccountToken?: TokenSource }[] }
}
interface Pod {
  spec: { containers: { env?: EnvVar[]; volumeMounts?: Mount[] }[]; volumes?: Volume[] }
}
interface Injected {
  env: Record<string, string>
  tokenPath: string
  audience: string[]
  expirationSeconds: number
}

/** Reads what the webhook injected into the first container: plain env values and the token mount. */
function injectedFor(pod: Pod): Injected {
  const container = pod.spec.containers[0]
  assert.ok(container)
  const vars = container.env ?? []
  assert.ok(
    vars.every((v) => typeof v.value === 'string'),
    'every injected env var has a literal value',
  )
  const env = Object.fromEntries(vars.map((v) => [v.name, v.value ?? '']))
  const tokenPath = env['AWS_WEB_IDENTITY_TOKEN_FILE'] ?? ''
  const mount = container.volumeMounts?.find((m) => tokenPath.startsWith(`${m.mountPath}/`))
  assert.ok(mount, `a volumeMount contains ${tokenPath}`)
  assert.equal(mount.readOnly, true)
  const volume = pod.spec.volumes?.find((v) => v.name === mount.name)
  const source = volume?.projected?.sources?.find((s) => s.serviceAccountToken)?.serviceAccountToken
  assert.ok(source, `volume ${mount.name} projects a serviceAccountToken`)
  assert.equal(
    tokenPath,
    `${mount.mountPath}/${source.path}`,
    'token file = mountPath/projected path',
  )
  return {
    env,
    tokenPath,
    audience: [source.audience],
    expirationSeconds: source.expirationSeconds,
  }
}

/** The members of an SDK ServiceException the assertions read. */
function serviceError(e: unknown): { name: string; status: number | undefined } {
  const err = e as { name: string; $metadata?: { httpStatusCode?: number } }
  return { name: err.name, status: err.$metadata?.httpStatusCode }
}

describe('the AWS SDK in a mutated pod gets Vultr credentials from the STS-compatible endpoint', () => {
  let sts: FakeSts
  let key: SigningKey
  let injected: Injected
  const dirs: string[] = []

  before(async () => {
    key = await createSigningKey()
    sts = await startFakeSts({ jwks: key.jwks, issuer: ISSUER, roles: [ROLE] })
    const review = readJson('pod-irsa-single-container.json')
    const sa = readJson('serviceaccount-irsa-sa.json') as object
    const res = await admit(review, [sa], { STS_ENDPOINT: sts.endpoint })
    assert.equal(res.status, 200)
    assert.equal(res.body.response.allowed, true)
    injected = injectedFor(res.mutatedPod)
  })
  after(async () => {
    await sts?.close()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  /** Plays the kubelet: writes a token for the projected volume's audience and lifetime. */
  async function podEnv(token?: string, drop: string[] = []): Promise<Record<string, string>> {
    const dir = mkdtempSync(join(tmpdir(), 'irsa-sdk-e2e-'))
    dirs.push(dir)
    const jwt =
      token ??
      (await signServiceAccountToken(key, {
        issuer: ISSUER,
        namespace: NAMESPACE,
        serviceAccount: SA,
        audience: injected.audience,
        expiresIn: injected.expirationSeconds,
      }))
    writeFileSync(join(dir, 'token'), jwt)
    const home = mkdtempSync(join(dir, 'home-'))
    // The only translation from the pod: the token file lives in a temp dir instead of the mount path.
    const env: Record<string, string> = {
      ...injected.env,
      AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token'),
      HOME: home,
    }
    for (const name of drop) delete env[name]
    return env
  }

  test('the webhook injected the role, the token path and the STS endpoint it was configured with', () => {
    assert.equal(injected.env['AWS_ROLE_ARN'], ROLE)
    assert.equal(injected.tokenPath, '/var/run/secrets/vultr.com/serviceaccount/token')
    assert.equal(injected.env['AWS_ENDPOINT_URL_STS'], sts.endpoint)
    assert.deepEqual(injected.audience, ['vultr'])
  })

  for (const provider of ['tokenFile', 'chain'] as const) {
    test(`${provider === 'chain' ? 'fromNodeProviderChain()' : 'fromTokenFile()'} resolves the credentials STS issued, via the Vultr path`, async () => {
      const seen = sts.requests.length
      const env = await podEnv()
      const result = await runSdk(provider, env)
      const calls = sts.requests.slice(seen)
      assert.equal(calls.length, 1, 'exactly one STS call')
      const call = calls[0]
      assert.ok(call)
      assert.match(call.path, new RegExp(`^${VULTR_STS_PATH}/?$`))
      assert.equal(call.method, 'POST')
      assert.equal(call.params['Action'], 'AssumeRoleWithWebIdentity')
      assert.equal(call.params['RoleArn'], ROLE)
      assert.equal(
        call.params['WebIdentityToken'],
        readFileSync(env['AWS_WEB_IDENTITY_TOKEN_FILE'] ?? '', 'utf8'),
      )
      assert.equal(result.ok, true, JSON.stringify(result))
      const issued = call.credentials
      assert.ok(issued)
      assert.equal(result.credentials?.['accessKeyId'], issued.AccessKeyId)
      assert.equal(result.credentials?.['secretAccessKey'], issued.SecretAccessKey)
      assert.equal(result.credentials?.['sessionToken'], issued.SessionToken)
      assert.equal(result.credentials?.['expiration'], new Date(issued.Expiration).toISOString())
      assert.deepEqual(result.blocked, [])
    })
  }

  test('a token for the wrong audience is refused by STS and the SDK surfaces InvalidIdentityToken', async () => {
    const token = await signServiceAccountToken(key, {
      issuer: ISSUER,
      namespace: NAMESPACE,
      serviceAccount: SA,
      audience: ['sts.amazonaws.com'],
    })
    const result = await runSdk('chain', await podEnv(token))
    assert.equal(result.ok, false)
    assert.equal(result.code, 'InvalidIdentityToken')
    assert.equal(result.status, 400)
    assert.match(result.message ?? '', /audience/)
    assert.equal(sts.requests.at(-1)?.errorCode, 'InvalidIdentityToken')
  })

  test('an expired token is refused by STS and the SDK surfaces ExpiredTokenException', async () => {
    const token = await signServiceAccountToken(key, {
      issuer: ISSUER,
      namespace: NAMESPACE,
      serviceAccount: SA,
      now: Math.floor(Date.now() / 1000) - 7200,
      expiresIn: 3600,
    })
    const result = await runSdk('tokenFile', await podEnv(token))
    assert.equal(result.ok, false)
    assert.equal(result.code, 'ExpiredTokenException')
    assert.equal(result.name, 'ExpiredTokenException')
    assert.equal(sts.requests.at(-1)?.errorCode, 'ExpiredTokenException')
  })

  test('a token signed by a key that is not in the issuer JWKS is refused', async () => {
    const forged = await createSigningKey(key.kid)
    const token = await signServiceAccountToken(forged, {
      issuer: ISSUER,
      namespace: NAMESPACE,
      serviceAccount: SA,
    })
    const result = await runSdk('tokenFile', await podEnv(token))
    assert.equal(result.ok, false)
    assert.equal(result.code, 'InvalidIdentityToken')
    assert.match(result.message ?? '', /signature/)
  })

  test('a token path outside the projected mount leaves the SDK without a token and STS uncalled', async () => {
    const seen = sts.requests.length
    const env = await podEnv()
    const result = await runSdk('tokenFile', {
      ...env,
      AWS_WEB_IDENTITY_TOKEN_FILE: `${env['HOME']}/nope`,
    })
    assert.equal(result.ok, false)
    assert.match(result.message ?? '', /ENOENT/)
    assert.equal(sts.requests.length, seen)
  })

  test('without AWS_ENDPOINT_URL_STS the SDK heads for AWS STS, never reaches Vultr, and fails offline', async () => {
    const seen = sts.requests.length
    const env = await podEnv(undefined, ['AWS_ENDPOINT_URL_STS'])
    const result = await runSdk('chain', { ...env, AWS_EC2_METADATA_DISABLED: 'true' })
    assert.equal(result.ok, false)
    assert.equal(sts.requests.length, seen, 'the fake Vultr STS got no call')
    assert.ok(result.blocked.length > 0, 'the SDK tried to connect somewhere else')
    // Observed with JS v3: sts.us-east-1.amazonaws.com (no region in the env → us-east-1, regional).
    assert.ok(
      result.blocked.every((h) => h.endsWith('.amazonaws.com')),
      result.blocked.join(','),
    )
    assert.match(result.message ?? '', /egress blocked by test guard/)
  })
})

describe('@aws-sdk/client-sts speaks the STS Query protocol the fake implements', () => {
  let sts: FakeSts
  let key: SigningKey
  let client: STSClient
  before(async () => {
    key = await createSigningKey()
    sts = await startFakeSts({ jwks: key.jwks, issuer: ISSUER, roles: [ROLE] })
    const credentials = { accessKeyId: 'AKIDSTATIC', secretAccessKey: 'static-secret' }
    client = new STSClient({ region: 'ewr', endpoint: sts.endpoint, credentials, maxAttempts: 1 })
  })
  after(async () => {
    client?.destroy()
    await sts?.close()
  })
  const token = () =>
    signServiceAccountToken(key, { issuer: ISSUER, namespace: NAMESPACE, serviceAccount: SA })

  test('AssumeRoleWithWebIdentityCommand with an ARN-form RoleArn returns every response member', async () => {
    const out = await client.send(
      new AssumeRoleWithWebIdentityCommand({
        RoleArn: `arn:aws:iam::org-1234:role/${ROLE}`,
        RoleSessionName: 'e2e-session',
        WebIdentityToken: await token(),
        DurationSeconds: 900,
      }),
    )
    const call = sts.requests.at(-1)
    assert.equal(call?.params['Version'], '2011-06-15')
    assert.equal(call?.params['DurationSeconds'], '900')
    assert.equal(call?.contentType.startsWith('application/x-www-form-urlencoded'), true)
    assert.equal(out.Credentials?.AccessKeyId, call?.credentials?.AccessKeyId)
    assert.equal(out.Credentials?.SessionToken, call?.credentials?.SessionToken)
    assert.equal(out.SubjectFromWebIdentityToken, `system:serviceaccount:${NAMESPACE}:${SA}`)
    assert.equal(out.Audience, 'vultr')
    assert.equal(out.Provider, ISSUER)
    assert.match(out.AssumedRoleUser?.Arn ?? '', new RegExp(`:assumed-role/${ROLE}/e2e-session$`))
    assert.match(out.$metadata.requestId ?? '', /^[0-9a-f-]{36}$/)
  })

  test('a role the issuer is not trusted for is refused with AccessDenied and HTTP 403', async () => {
    const command = new AssumeRoleWithWebIdentityCommand({
      RoleArn: '00000000-0000-4000-8000-000000000000',
      RoleSessionName: 'e2e-session',
      WebIdentityToken: await token(),
    })
    await assert.rejects(client.send(command), (e) => {
      assert.deepEqual(serviceError(e), { name: 'AccessDenied', status: 403 })
      return true
    })
  })

  test('GetCallerIdentity is not served by the Vultr-compatible endpoint and fails with InvalidAction', async () => {
    await assert.rejects(client.send(new GetCallerIdentityCommand({})), (e) => {
      assert.deepEqual(serviceError(e), { name: 'InvalidAction', status: 400 })
      return true
    })
    assert.equal(sts.requests.at(-1)?.params['Action'], 'GetCallerIdentity')
  })
})
