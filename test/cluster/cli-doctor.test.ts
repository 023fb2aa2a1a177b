/**
 * `irsa-webhook doctor` on the shipped classic bundle installed for real: `deploy/` rendered by kustomize and applied,
 * then `./generate-certs.sh --mode classic` (openssl + kubectl, as a user runs it) against the control plane. (The
 * bundle's own certificate Job, deploy/components/certs, never runs here: no kubelet; the script is the documented
 * alternative.)
 *
 * What cannot pass here: this control plane has no kubelet, no kube-proxy and no Service routing, so the webhook's
 * pods stay Pending, its Service's EndpointSlices never list a ready address, and the API server cannot reach the
 * webhook through the Service's ClusterIP. The `endpoints` and `dry-run pod` checks therefore fail, for exactly
 * that reason, on a correct install; every other check must pass. Then the install is broken on purpose — another CA
 * in the caBundle, the ClusterRoleBinding deleted — and doctor must name the cause and the fix; then it is restored.
 *
 * The control plane is shared by the test files, so the install is relocated the way a user relocates it with a
 * kustomize `namespace:`: its namespaced objects go to a namespace of this test instead of irsa-system, and the two
 * cluster-scoped objects it breaks (the MutatingWebhookConfiguration and the ClusterRoleBinding) get a suffix; the
 * configuration's namespaceSelector excludes that namespace instead of irsa-system and is scoped (one more
 * expression) to this test's namespaces, so other tests' pods never meet a webhook that cannot be reached. Nothing
 * else changes.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { runCli } from '../support/cluster-cli.ts'
import { SCOPE_LABEL } from '../support/cluster-webhook.ts'
import { type Command, type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { type Doc, get, render } from '../support/manifests.ts'
import { poll, ROOT } from '../support/process.ts'
import { createTestCertificates } from '../support/tls.ts'

const cluster = await controlPlane()
const execFileAsync = promisify(execFile)

const ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const SHIPPED_NAMESPACE = 'irsa-system'

/**
 * The rendered deploy/ bundle moved to `namespace`, with the MutatingWebhookConfiguration and ClusterRoleBinding
 * named `<name>-<suffix>` and the configuration scoped to namespaces labelled SCOPE_LABEL=`suffix`.
 */
function relocate(docs: Doc[], namespace: string, suffix: string): Doc[] {
  return docs.map((original) => {
    const doc = structuredClone(original) as Doc & { metadata: Doc }
    if (doc['kind'] === 'Namespace') {
      doc.metadata['name'] = namespace
      doc.metadata['labels'] = { ...(doc.metadata['labels'] as Doc), 'irsa-test': 'true' }
    } else if (doc.metadata['namespace'] === SHIPPED_NAMESPACE)
      doc.metadata['namespace'] = namespace
    if (doc['kind'] === 'ClusterRoleBinding') {
      doc.metadata['name'] = `${doc.metadata['name']}-${suffix}`
      for (const subject of doc['subjects'] as Doc[]) subject['namespace'] = namespace
    }
    if (doc['kind'] === 'MutatingWebhookConfiguration') {
      doc.metadata['name'] = `${doc.metadata['name']}-${suffix}`
      for (const hook of doc['webhooks'] as Doc[]) relocateWebhook(hook, namespace, suffix)
    }
    return doc
  })
}

/** The webhook entry: its Service in `namespace`, which it excludes instead of irsa-system; scoped to `suffix`. */
function relocateWebhook(hook: Doc, namespace: string, suffix: string): void {
  ;(get(hook, 'clientConfig.service') as Doc)['namespace'] = namespace
  const selector = hook['namespaceSelector'] as {
    matchExpressions: { key: string; operator: string; values: string[] }[]
  }
  for (const expression of selector.matchExpressions)
    expression.values = expression.values.map((v) => (v === SHIPPED_NAMESPACE ? namespace : v))
  selector.matchExpressions.push({ key: SCOPE_LABEL, operator: 'In', values: [suffix] })
}

/** One check line of doctor's output (symbol, name, detail) and its fix line, if any. */
function check(stdout: string, name: string): { line: string; fix: string | undefined } {
  const lines = stdout.split('\n')
  const at = lines.findIndex((line) => line.slice(2).startsWith(name))
  assert.ok(at >= 0, `no check "${name}" in:\n${stdout}`)
  const next = lines[at + 1] ?? ''
  return {
    line: lines[at] ?? '',
    fix: next.startsWith('    fix: ') ? next.slice('    fix: '.length) : undefined,
  }
}

describe('doctor on the shipped classic bundle, installed on a real control plane', {
  skip: cluster.skip,
}, () => {
  let cp: ControlPlane
  let suffix: string
  let namespace: string
  let probe: string
  let configuration: string
  let binding: Doc
  let bindings: Doc[] = []
  let doctorArgs: string[]
  const doctor = () => runCli(['doctor', ...doctorArgs], { kubeconfig: cp.kubeconfig })
  const generateCerts = () =>
    execFileAsync(
      join(ROOT, 'generate-certs.sh'),
      ['--mode', 'classic', '--namespace', namespace, '--webhook', configuration],
      { cwd: ROOT, env: { ...process.env, KUBECONFIG: cp.kubeconfig } },
    )

  before(
    async () => {
      cp = usable(cluster)
      // A fresh namespace name for the install (created by the bundle's own Namespace object), and a probe
      // namespace the configuration serves (the scope label).
      const scratch = await cp.namespace('doctor')
      await cp.kubectlOk(['delete', 'namespace', scratch, '--wait=false'])
      suffix = scratch.replace(/^doctor-/, '')
      namespace = `irsa-doctor-${suffix}`
      probe = await cp.namespace('doctor-probe', { [SCOPE_LABEL]: suffix })
      const docs = relocate(render(join(ROOT, 'deploy')), namespace, suffix)
      configuration = String(
        get(
          docs.find((d) => d['kind'] === 'MutatingWebhookConfiguration'),
          'metadata.name',
        ),
      )
      bindings = docs.filter((d) => d['kind'] === 'ClusterRoleBinding')
      binding = bindings.find((d) => get(d, 'roleRef.name') === 'irsa-webhook-sa-reader') as Doc
      await cp.kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }),
      })
      await generateCerts()
      await cp.kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name: 'app', namespace: probe, annotations: { 'api.vultr.com/role': ROLE } },
        }),
      })
      doctorArgs = ['-n', namespace, '--configuration', configuration, '-s', `${probe}/app`]
    },
    { timeout: 120_000 },
  )
  after(async () => {
    if (cp === undefined) return
    await cp.kubectl([
      'delete',
      'mutatingwebhookconfiguration',
      configuration,
      '--ignore-not-found',
    ])
    for (const each of bindings)
      await cp.kubectl([
        'delete',
        'clusterrolebinding',
        String(get(each, 'metadata.name')),
        '--ignore-not-found',
      ])
  })

  /** Runs doctor until `done(stdout)` (RBAC and caBundle changes reach the API server's caches a moment later). */
  const doctorUntil = (done: (stdout: string) => boolean, what: string): Promise<Command> =>
    poll(
      async () => {
        const run = await doctor()
        return done(run.stdout) ? run : undefined
      },
      what,
      30_000,
    )

  it('a correct install: every check passes but the two that need a data plane (endpoints, dry-run pod)', async () => {
    const run = await doctor()
    assert.equal(run.code, 1, run.stdout + run.stderr)
    assert.equal(
      run.stdout.split('\n')[0],
      `irsa-webhook doctor: ${cp.server}, mode classic, namespace ${namespace}`,
    )
    const passed = [
      `MutatingWebhookConfiguration ${configuration} — webhook irsa.vultr.com → Service ${namespace}/irsa-webhook:443/mutate`,
      'webhook settings — failurePolicy Fail, timeoutSeconds 10, reinvocationPolicy IfNeeded',
      `Service ${namespace}/irsa-webhook — ClusterIP, port 443`,
      `caBundle verifies the serving certificate — Secret ${namespace}/irsa-webhook-certs is signed by the caBundle`,
      `certificate name — SAN has irsa-webhook.${namespace}.svc`,
      `RBAC: ${namespace}/irsa-webhook can get serviceaccounts — get, list and watch allowed`,
      `exclusions — namespaceSelector excludes ${namespace}, kube-system`,
      `OIDC discovery — issuer ${cp.issuer}, 1 signing key(s)`,
    ]
    for (const line of passed)
      assert.ok(run.stdout.includes(`\n✔ ${line}\n`), `✔ ${line} in:\n${run.stdout}`)
    // generate-certs.sh issues a 365-day leaf.
    assert.match(
      check(run.stdout, 'certificate expiry').line,
      /^✔ certificate expiry — 36[45] days left/,
    )
    assert.match(
      check(run.stdout, 'pods missing their identity').line,
      /^✔ pods missing their identity — none of \d+ pods/,
    )
    // No kubelet: the Deployment's pods stay Pending without an IP, so no EndpointSlice lists a ready address…
    const endpoints = check(run.stdout, 'endpoints of')
    assert.equal(
      endpoints.line,
      `✘ endpoints of ${namespace}/irsa-webhook — no ready endpoints: the webhook is not responding`,
    )
    assert.equal(
      endpoints.fix,
      `kubectl -n ${namespace} get pods -l app.kubernetes.io/name=irsa-webhook; kubectl -n ${namespace} logs -l app.kubernetes.io/name=irsa-webhook`,
    )
    const pods = await cp.getJson<{ items: { status: { phase: string } }[] }>([
      'pods',
      '-n',
      namespace,
      '-l',
      'app.kubernetes.io/name=irsa-webhook',
    ])
    assert.equal(pods.items.length, 2)
    assert.ok(pods.items.every((pod) => pod.status.phase === 'Pending'))
    // …and the API server, resolving the webhook's Service through its endpoints (the harness runs it with
    // --enable-aggregator-routing), cannot call it: the real message, and doctor's advice for it.
    const dryRun = check(run.stdout, 'dry-run pod')
    assert.equal(
      dryRun.line,
      `✘ dry-run pod with ${probe}/app — the API server refused the pod: HTTP 500: Internal error occurred: failed calling webhook "irsa.vultr.com": failed to call webhook: Post "https://irsa-webhook.${namespace}.svc:443/mutate?timeout=10s": no endpoints available for service "irsa-webhook"`,
    )
    assert.match(
      dryRun.fix ?? '',
      /^the webhook is not responding: no ready pod behind its Service/,
    )
    assert.match(run.stdout, /\n12 checks: 10 passed, 0 warnings, 2 failed, 0 skipped\n$/)
  })

  it('another CA in the caBundle: the caBundle check fails with the fix; generate-certs.sh restores it', async () => {
    const other = createTestCertificates({ dnsNames: [`irsa-webhook.${namespace}.svc`] })
    try {
      await cp.kubectlOk([
        'patch',
        'mutatingwebhookconfiguration',
        configuration,
        '--type=json',
        '-p',
        JSON.stringify([
          {
            op: 'replace',
            path: '/webhooks/0/clientConfig/caBundle',
            value: Buffer.from(other.caPem).toString('base64'),
          },
        ]),
      ])
    } finally {
      rmSync(other.dir, { recursive: true, force: true })
    }
    const broken = await doctor()
    assert.equal(broken.code, 1)
    const bundle = check(broken.stdout, 'caBundle verifies the serving certificate')
    assert.equal(
      bundle.line,
      `✘ caBundle verifies the serving certificate — Secret ${namespace}/irsa-webhook-certs is not signed by any of the 1 caBundle certificate(s): the API server gets x509 errors`,
    )
    // The fix: the bundle's renew CronJob, or the script. (For an install outside irsa-system the script also
    // needs --namespace and --webhook; doctor's fix does not print them.)
    assert.equal(
      bundle.fix,
      `kubectl -n ${namespace} create job --from=cronjob/irsa-webhook-certs-renew renew-now, or ./generate-certs.sh --mode classic (it updates both), then restart the webhook`,
    )
    assert.match(broken.stdout, /\n12 checks: 9 passed, 0 warnings, 3 failed, 0 skipped\n$/)

    await generateCerts()
    const restored = await doctor()
    assert.match(
      check(restored.stdout, 'caBundle verifies the serving certificate').line,
      /^✔ caBundle verifies the serving certificate — Secret \S+ is signed by the caBundle$/,
    )
    assert.match(restored.stdout, /\n12 checks: 10 passed, 0 warnings, 2 failed, 0 skipped\n$/)
  })

  it('the ClusterRoleBinding deleted: the RBAC check fails with the fix; re-applying it restores it', async () => {
    const name = String(get(binding, 'metadata.name'))
    await cp.kubectlOk(['delete', 'clusterrolebinding', name])
    const broken = await doctorUntil(
      (out) => out.includes('\n✘ RBAC:'),
      'doctor to see the binding gone',
    )
    assert.equal(broken.code, 1)
    const rbac = check(broken.stdout, 'RBAC:')
    assert.equal(
      rbac.line,
      `✘ RBAC: ${namespace}/irsa-webhook can get serviceaccounts — denied: every lookup fails and pods are admitted unmutated (or rejected)`,
    )
    assert.equal(
      rbac.fix,
      'kubectl apply -k deploy/rbac (ClusterRole irsa-webhook-sa-reader and its binding)',
    )
    assert.match(broken.stdout, /\n12 checks: 9 passed, 0 warnings, 3 failed, 0 skipped\n$/)

    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(binding) })
    const restored = await doctorUntil(
      (out) => out.includes('\n✔ RBAC:'),
      'doctor to see the binding back',
    )
    assert.match(restored.stdout, /\n12 checks: 10 passed, 0 warnings, 2 failed, 0 skipped\n$/)
  })
})
