/**
 * `irsa-webhook certs` on the real control plane (test/support/control-plane.ts), run as the Job runs it:
 * `node dist/cli.js certs` with the token of its own ServiceAccount `irsa-system/irsa-webhook-certs` and nothing but
 * the shipped RBAC (deploy/components/certs/rbac.yaml). A first run creates, a second does nothing, a forced
 * near-expiry renews and a CA rotation rotates — while the webhook, started from dist/ as in production (HTTPS from
 * the Secret's files, hot reload), answers a pod create every 0.5 s, all of them mutated. And the RBAC refuses what
 * the Job must not do.
 *
 * The configuration the command manages is the shipped one, named `irsa-webhook` (the RBAC's resourceNames), with two
 * changes so that the API server, which has no Service routing here, can call the webhook and no other test's pods
 * reach it: `service:` becomes `url: https://127.0.0.1:<port>/mutate` (so the certificate is for the IP address) and
 * one namespaceSelector expression scopes it to this test's namespace. There is no kubelet: the test copies the
 * Secret into the webhook's files as the kubelet's Secret volume would.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { connect } from 'node:tls'
import { promisify } from 'node:util'
import { SECRET_NAMES } from '../../cli/certs/certs.ts'
import { MANAGED_BY } from '../../cli/certs/plan.ts'
import {
  applyShippedRbac,
  ensureBundle,
  SCOPE_LABEL,
  shippedEnv,
  shippedWebhookConfiguration,
  startCommand,
} from '../support/cluster-webhook.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { type ChildServer, freePort, poll, ROOT, spawnServer } from '../support/process.ts'

const cluster = await controlPlane()
const run = promisify(execFile)
const NAMESPACE = 'irsa-system'
const MWC = 'irsa-webhook'
const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const CERTS_RBAC = join(ROOT, 'deploy/components/certs/rbac.yaml')

type Json = Record<string, unknown>
interface SecretObject {
  metadata: { resourceVersion: string; labels?: Record<string, string> }
  type: string
  data: Record<string, string>
}
const text = (value: string | undefined) => Buffer.from(value ?? '', 'base64').toString('utf8')

/** `node dist/cli.js certs --job …` as the Job's container runs it, with the Job's ServiceAccount token. */
function certs(kubeconfig: string, ...args: string[]) {
  return certsCommand(kubeconfig, '--job', ...args)
}

async function certsCommand(kubeconfig: string, ...args: string[]) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['dist/cli.js', 'certs', '--kubeconfig', kubeconfig, ...args],
      { cwd: ROOT, timeout: 60_000, env: { PATH: process.env['PATH'] ?? '' } },
    )
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' }
  }
}

/** The fingerprint of the certificate the server at 127.0.0.1:`port` presents. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '')
      socket.end()
    })
    socket.on('error', reject)
  })
}

describe('irsa-webhook certs on a real kube-apiserver, with its Job RBAC', {
  skip: cluster.skip,
}, () => {
  let cp: ControlPlane
  let jobKubeconfig: string
  let files: string
  let scope: string
  let served: string
  let webhook: ChildServer | undefined

  const getSecret = (name: string) => cp.getJson<SecretObject>(['-n', NAMESPACE, 'secret', name])
  const bundles = async () => {
    const mwc = await cp.getJson<{ webhooks: { clientConfig: { caBundle?: string } }[] }>([
      'mutatingwebhookconfiguration',
      MWC,
    ])
    return mwc.webhooks.map((hook) => text(hook.clientConfig.caBundle))
  }
  /** What the kubelet does for a Secret volume: the new files appear together (here: renamed into place). */
  const syncFiles = async () => {
    const secret = await getSecret(SECRET_NAMES.classic)
    for (const key of ['tls.key', 'tls.crt']) {
      writeFileSync(join(files, `.${key}`), text(secret.data[key]))
      renameSync(join(files, `.${key}`), join(files, key))
    }
    return new X509Certificate(text(secret.data['tls.crt'])).fingerprint256
  }
  const reloaded = (fingerprint: string) =>
    poll(
      async () => ((await servedFingerprint(Number(served))) === fingerprint ? true : undefined),
      'the webhook to serve the renewed certificate',
      30_000,
    )

  before(
    async () => {
      cp = usable(cluster)
      ensureBundle()
      await applyShippedRbac(cp)
      await cp.kubectlOk(['apply', '-f', CERTS_RBAC])
      jobKubeconfig = await cp.serviceAccountKubeconfig(NAMESPACE, 'irsa-webhook-certs')
      files = mkdtempSync(join(tmpdir(), 'irsa-certs-volume-'))
      scope = `certs-${Math.random().toString(36).slice(2, 8)}`
      served = String(await freePort())
      const shipped = shippedWebhookConfiguration() as Json & { webhooks: Json[] }
      for (const hook of shipped.webhooks) {
        hook['clientConfig'] = { url: `https://127.0.0.1:${served}/mutate` }
        const selector = hook['namespaceSelector'] as { matchExpressions: Json[] }
        selector.matchExpressions.push({ key: SCOPE_LABEL, operator: 'In', values: [scope] })
      }
      await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(shipped) })
    },
    { timeout: 180_000 },
  )
  after(async () => {
    await webhook?.stop()
    if (cp === undefined) return
    await cp.kubectl(['delete', 'mutatingwebhookconfiguration', MWC, '--ignore-not-found'])
    await cp.kubectl([
      '-n',
      NAMESPACE,
      'delete',
      'secret',
      SECRET_NAMES.ca,
      SECRET_NAMES.classic,
      SECRET_NAMES.knative,
      '--ignore-not-found',
    ])
    rmSync(files, { recursive: true, force: true })
  })

  test('the RBAC allows what the Job does and nothing else', async () => {
    const can = async (...args: string[]) =>
      (await cp.kubectl(['auth', 'can-i', ...args], { kubeconfig: jobKubeconfig })).code === 0
    for (const name of [SECRET_NAMES.ca, SECRET_NAMES.classic, SECRET_NAMES.knative])
      for (const verb of ['get', 'update'])
        assert.ok(await can(verb, `secrets/${name}`, '-n', NAMESPACE), `${verb} ${name}`)
    assert.ok(await can('create', 'secrets', '-n', NAMESPACE))
    assert.ok(await can('create', 'events', '-n', NAMESPACE))
    for (const verb of ['get', 'patch'])
      assert.ok(
        await can(verb, `mutatingwebhookconfigurations/${MWC}`),
        `${verb} the configuration`,
      )
    const refused = [
      ['get', 'secrets/irsa-webhook-path-token', '-n', NAMESPACE],
      ['list', 'secrets', '-n', NAMESPACE],
      ['delete', `secrets/${SECRET_NAMES.ca}`, '-n', NAMESPACE],
      ['get', `secrets/${SECRET_NAMES.ca}`, '-n', 'default'],
      ['create', 'secrets', '-n', 'default'],
      ['get', 'mutatingwebhookconfigurations/another-webhook'],
      ['patch', 'mutatingwebhookconfigurations/another-webhook'],
      ['list', 'mutatingwebhookconfigurations'],
      ['delete', `mutatingwebhookconfigurations/${MWC}`],
      ['get', 'validatingwebhookconfigurations/irsa-webhook'],
    ]
    for (const args of refused) assert.equal(await can(...args), false, args.join(' '))
    // And the API server itself says no (not only the review).
    const denied = await cp.kubectl(['-n', 'default', 'get', 'secret', 'x'], {
      kubeconfig: jobKubeconfig,
    })
    assert.notEqual(denied.code, 0)
    assert.match(denied.stderr, /forbidden/i)
  })

  test('first run creates, second does nothing, near-expiry renews, a CA rotates: the webhook answers every 0.5 s throughout', async () => {
    // 1. First run: the CA, the Secret the webhook reads, caBundle.
    const first = await certs(jobKubeconfig)
    assert.equal(first.code, 0, first.stderr)
    assert.equal(first.stderr, '', 'no warning; the CertificateIssued Event was recorded')
    assert.match(first.stdout, /calls URL host 127\.0\.0\.1; certificate for 127\.0\.0\.1/)
    assert.match(
      first.stdout,
      /CA: created .*\n.*caBundle: set .*\n.*serving certificate: issued .*\ndone\n$/,
    )
    const secret = await getSecret(SECRET_NAMES.classic)
    assert.equal(secret.type, 'kubernetes.io/tls')
    assert.equal(secret.metadata.labels?.[MANAGED_BY.key], MANAGED_BY.value)
    const ca = text((await getSecret(SECRET_NAMES.ca)).data['ca.crt'])
    assert.deepEqual(await bundles(), [ca])

    // The webhook as production starts it, on the Secret's files (hot reload every 200 ms).
    await syncFiles()
    const { nodeArgs, entry } = startCommand()
    webhook = await spawnServer({
      entry,
      nodeArgs,
      env: {
        ...shippedEnv('classic'),
        HOST: '127.0.0.1',
        PORT: served,
        TLS_CERT_PATH: join(files, 'tls.crt'),
        TLS_KEY_PATH: join(files, 'tls.key'),
        TLS_RELOAD_INTERVAL_MS: '200',
        SA_LOOKUP_MODE: 'get',
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: new URL(cp.server).port,
        KUBE_SERVICEACCOUNT_DIR: await cp.serviceAccountMount(NAMESPACE, 'irsa-webhook'),
      },
    })

    // 2. Second run: nothing to do, nothing written.
    const second = await certs(jobKubeconfig)
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stdout, /\nnothing to do\n$/)
    assert.equal(
      (await getSecret(SECRET_NAMES.classic)).metadata.resourceVersion,
      secret.metadata.resourceVersion,
    )

    // A pod create every 0.5 s in a namespace this configuration serves, until the renewals are done.
    const namespace = await cp.namespace('certs', { [SCOPE_LABEL]: scope })
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'app', namespace, annotations: { 'api.vultr.com/role': ROLE } },
      }),
    })
    const outcomes: { code: number; mutated: boolean; stderr: string }[] = []
    let creating = true
    const loop = (async () => {
      for (let i = 0; creating; i++) {
        const pod = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `app-${i}`, namespace },
          spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'busybox' }] },
        }
        const result = await cp.kubectl(['create', '-o', 'json', '-f', '-'], {
          input: JSON.stringify(pod),
        })
        outcomes.push({
          code: result.code,
          mutated: result.stdout.includes('AWS_ROLE_ARN'),
          stderr: result.stderr,
        })
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
    })()
    try {
      await poll(() => (outcomes.length >= 3 ? true : undefined), 'the first pod creates', 30_000)

      // 3. Forced near-expiry: a new certificate from the same CA; caBundle untouched.
      const renewed = await certs(jobKubeconfig, '--renew-before', '400')
      assert.equal(renewed.code, 0, renewed.stderr)
      assert.match(renewed.stdout, /serving certificate: issued .*within 400 days/)
      assert.deepEqual(await bundles(), [ca])
      await reloaded(await syncFiles())
      const afterRenewal = outcomes.length
      await poll(
        () => (outcomes.length >= afterRenewal + 3 ? true : undefined),
        'pod creates',
        30_000,
      )

      // 4. CA rotation: new + old CA in caBundle before the new certificate is written.
      const rotated = await certs(jobKubeconfig, '--rotate-ca')
      assert.equal(rotated.code, 0, rotated.stderr)
      const newCa = text((await getSecret(SECRET_NAMES.ca)).data['ca.crt'])
      assert.notEqual(newCa, ca)
      assert.deepEqual(await bundles(), [newCa + ca])
      // The pods still serve the old certificate for a while: let some creates go through it.
      const beforeSync = outcomes.length
      await poll(
        () => (outcomes.length >= beforeSync + 3 ? true : undefined),
        'pod creates',
        30_000,
      )
      await reloaded(await syncFiles())
      const afterRotation = outcomes.length
      await poll(
        () => (outcomes.length >= afterRotation + 3 ? true : undefined),
        'pod creates',
        30_000,
      )
    } finally {
      creating = false
      await loop
    }
    const failed = outcomes.filter((o) => o.code !== 0 || !o.mutated)
    assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} pod creates failed`)
    assert.ok(outcomes.length >= 12, `${outcomes.length} pod creates`)
  })

  test('a Secret it did not create is left alone: exit 1, or with --job exit 0 and a Warning Event on it', async () => {
    await cp.kubectlOk([
      '-n',
      NAMESPACE,
      'create',
      'secret',
      'generic',
      SECRET_NAMES.knative,
      '--from-literal=x=y',
    ])
    const before = await getSecret(SECRET_NAMES.knative)
    const plain = await certsCommand(jobKubeconfig, '--secret', SECRET_NAMES.knative)
    assert.equal(plain.code, 1, plain.stderr)
    assert.match(
      plain.stderr,
      /exists without the label app\.kubernetes\.io\/managed-by=irsa-webhook-certs/,
    )
    const job = await certs(jobKubeconfig, '--secret', SECRET_NAMES.knative)
    assert.equal(job.code, 0, job.stderr)
    assert.doesNotMatch(job.stderr, /could not record an Event/)
    const events = await cp.getJson<{ items: { type: string; reason: string; message: string }[] }>(
      [
        '-n',
        NAMESPACE,
        'events',
        '--field-selector',
        `involvedObject.kind=Secret,involvedObject.name=${SECRET_NAMES.knative}`,
      ],
    )
    assert.deepEqual(
      events.items.map((e) => [e.type, e.reason]),
      [['Warning', 'SecretNotManaged']],
    )
    assert.equal(
      (await getSecret(SECRET_NAMES.knative)).metadata.resourceVersion,
      before.metadata.resourceVersion,
      'not written',
    )
  })
})
