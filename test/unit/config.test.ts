/** Config parsing, the lookup budget from `?timeout=`, and role validation, as tables. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { apiServerSettings, listenPort, loadConfig, serveMode } from '../../function/config.ts'
import { isValidRole } from '../../function/identity.ts'
import { lookupBudgetMs, parseGoDuration } from '../../function/timeout.ts'

describe('loadConfig', () => {
  it('gives the documented defaults for an empty env', () => {
    const config = loadConfig({})
    assert.ok(config.ok)
    assert.equal(
      config.value.STS_ENDPOINT,
      'https://api.vultr.com/v2/assumed-roles/compatibility/aws/sts',
    )
    assert.equal(config.value.TOKEN_AUDIENCE, 'vultr')
    assert.equal(config.value.TOKEN_EXPIRATION_SECONDS, 86400)
    assert.equal(config.value.TLS_CERT_PATH, '/etc/webhook/certs/tls.crt')
    assert.equal(config.value.TLS_KEY_PATH, '/etc/webhook/certs/tls.key')
    assert.equal(config.value.INVALID_ROLE_POLICY, 'deny')
    assert.equal(config.value.SA_LOOKUP_MODE, 'get')
    assert.equal(config.value.DEFAULT_REGION, undefined)
    assert.equal(serveMode(config.value), 'https')
    assert.equal(listenPort(config.value, 'https'), 8443)
  })

  it('serves plain HTTP on 8080 under Knative (K_SERVICE set)', () => {
    const config = loadConfig({ K_SERVICE: 'irsa-webhook' })
    assert.ok(config.ok)
    assert.equal(serveMode(config.value), 'http')
    assert.equal(listenPort(config.value, 'http'), 8080)
  })

  it('lists every invalid variable at once, naming each', () => {
    const config = loadConfig({
      PORT: 'abc',
      INVALID_ROLE_POLICY: 'maybe',
      STS_ENDPOINT: 'ftp://x',
      TOKEN_EXPIRATION_SECONDS: '300',
      DEFAULT_REGION: 'New Jersey',
      MUTATE_PATH_TOKEN: 'short',
    })
    assert.equal(config.ok, false)
    if (config.ok) return
    for (const name of [
      'PORT',
      'INVALID_ROLE_POLICY',
      'STS_ENDPOINT',
      'TOKEN_EXPIRATION_SECONDS',
      'DEFAULT_REGION',
      'MUTATE_PATH_TOKEN',
    ]) {
      assert.match(config.error, new RegExp(`at ${name}`), name)
    }
  })

  it('treats empty optional variables as unset', () => {
    const config = loadConfig({ DEFAULT_REGION: '', MUTATE_PATH_TOKEN: '  ' })
    assert.ok(config.ok)
    assert.equal(config.value.DEFAULT_REGION, undefined)
    assert.equal(config.value.MUTATE_PATH_TOKEN, undefined)
  })
})

describe('API server settings (one source for every lookup mode)', () => {
  const settingsOf = (env: Record<string, string>) => {
    const config = loadConfig(env)
    assert.ok(config.ok)
    return apiServerSettings(config.value)
  }

  it('builds the in-cluster settings from KUBERNETES_SERVICE_HOST/PORT and KUBE_SERVICEACCOUNT_DIR', () => {
    for (const mode of ['get', 'watch']) {
      assert.deepEqual(
        settingsOf({
          SA_LOOKUP_MODE: mode,
          KUBERNETES_SERVICE_HOST: '10.96.0.1',
          KUBERNETES_SERVICE_PORT: '6443',
          KUBE_SERVICEACCOUNT_DIR: '/sa',
        }),
        {
          kind: 'in-cluster',
          settings: {
            host: '10.96.0.1',
            port: 6443,
            tokenFile: '/sa/token',
            caFile: '/sa/ca.crt',
            namespaceFile: '/sa/namespace',
          },
          from: 'KUBERNETES_SERVICE_HOST=10.96.0.1, KUBERNETES_SERVICE_PORT=6443, KUBE_SERVICEACCOUNT_DIR=/sa',
        },
      )
    }
  })

  it('prefers KUBECONFIG (its paths in order), and says what to set when neither is there', () => {
    assert.deepEqual(settingsOf({ KUBECONFIG: '/a:/b', KUBERNETES_SERVICE_HOST: '10.96.0.1' }), {
      kind: 'kubeconfig',
      paths: ['/a', '/b'],
    })
    const none = settingsOf({ SA_LOOKUP_MODE: 'watch' })
    assert.equal(none.kind, 'none')
    if (none.kind !== 'none') return
    assert.match(none.problem, /KUBECONFIG and KUBERNETES_SERVICE_HOST are both unset/)
    assert.match(none.fix, /KUBE_SERVICEACCOUNT_DIR/)
  })
})

describe('lookup budget from ?timeout=', () => {
  const rows: [string | undefined, number, number][] = [
    [undefined, 3000, 3000],
    ['10s', 3000, 3000],
    ['2s', 3000, 1600],
    ['1s', 3000, 750],
    ['30s', 3000, 3000],
    ['500ms', 3000, 250],
    ['1m', 60_000, 48_000],
    ['garbage', 3000, 3000],
  ]
  for (const [param, cap, want] of rows) {
    it(`gives ${want} ms for timeout=${param} with a cap of ${cap} ms`, () => {
      assert.equal(lookupBudgetMs(param, cap), want)
    })
  }
  it('parses compound Go durations', () => {
    assert.equal(parseGoDuration('1m30s'), 90_000)
    assert.equal(parseGoDuration('1.5s'), 1500)
    assert.equal(parseGoDuration('10'), undefined)
  })
})

describe('role values', () => {
  const valid = [
    '775a6be6-45cd-4f19-94f5-6e4f96f093ec',
    '775A6BE6-45CD-4F19-94F5-6E4F96F093EC',
    'arn:aws:iam::0d0c2f5e-4a43-4c48-9f7a-3a5b8f0f3f11:role/9b2f4c1e-7d38-4c55-8f0a-2b6e1d3c4a57',
    'arn:aws:iam::123456789012:role/app',
  ]
  const invalid = [
    '',
    ' ',
    'my-role',
    `${valid[0]}\n`,
    ` ${valid[0]}`,
    '775a6be6-45cd-4f19-94f5',
    'arn:',
    `arn:${'x'.repeat(2100)}`,
    'arn:aws:iam::1:role/has space',
    'ARN:aws:iam::1:role/x1234567890',
  ]
  for (const role of valid)
    it(`accepts ${JSON.stringify(role)}`, () => assert.ok(isValidRole(role)))
  for (const role of invalid)
    it(`rejects ${JSON.stringify(role).slice(0, 40)}`, () => assert.ok(!isValidRole(role)))
})

describe('empty numeric variables', () => {
  it('treats an empty number as unset, so its default applies', () => {
    const config = loadConfig({ PORT: '', SA_CACHE_TTL_SECONDS: '', SHUTDOWN_TIMEOUT_MS: ' ' })
    assert.ok(config.ok)
    assert.equal(config.value.PORT, undefined)
    assert.equal(config.value.SA_CACHE_TTL_SECONDS, 10)
    assert.equal(config.value.SHUTDOWN_TIMEOUT_MS, 20000)
  })
})
