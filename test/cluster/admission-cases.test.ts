/**
 * Every mutation case (test/fixtures/cases/*.json: ServiceAccount + pod + the expected answer) on the real
 * kube-apiserver, through the webhook as it runs in production (test/support/cluster-webhook.ts), created with
 * kubectl as a user would.
 *
 * For each case, two namespaces: one the webhook serves, and a control twin it does not. The case's pod is created in
 * both; the expected stored pod is the control's stored pod with the case's expected patch applied (a real RFC 6902
 * library), passed once through the API server's own defaulting (a dry-run create in the control namespace); the
 * webhook namespace's stored pod must equal it as a whole, after normalising only what differs between any two
 * stored objects (uid, names generated, timestamps, resourceVersion, the `kube-api-access-*` suffix, the namespace).
 * kubectl's printed warnings must be the case's warnings, and a denial must show the case's message in kubectl's
 * `denied the request` line.
 *
 * The case pods are written as the webhook sees them, after the API server's ServiceAccount admission added the
 * `kube-api-access-*` volume; that volume and its mounts are removed before creating them here, since the real API
 * server adds its own (a case pod without it is created with `automountServiceAccountToken: false`, the only way
 * such a pod reaches a webhook). Unknown fields (`futureField`) are removed too: the real API server drops them while decoding,
 * before any webhook sees them (the unit cases keep them). No kubelet runs, so pods stay Pending.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fastJsonPatch from 'fast-json-patch'
import {
  type CaseOutcome,
  caseConfigs,
  createPod,
  type FixtureCase,
  forCluster,
  type Json,
  normalise,
  type PodCase,
  storedPod,
} from '../support/cluster-pods.ts'
import {
  type ClusterWebhook,
  SCOPE_LABEL,
  startClusterWebhook,
} from '../support/cluster-webhook.ts'
import { controlPlane, usable } from '../support/control-plane.ts'
import { listFixtures, loadJson } from '../support/fixtures.ts'

const cluster = await controlPlane()

/**
 * Cases the real API server itself decides before any webhook is called (its ServiceAccount admission plugin runs
 * first): the webhook's answer for them is covered by the unit cases; here the API server's own answer is checked.
 */
const DECIDED_BY_THE_API_SERVER: Record<string, RegExp> = {
  // The ServiceAccount admission plugin rejects a pod whose ServiceAccount does not exist.
  'sa-not-found.json': /serviceaccount "app-sa" not found/,
  'opt-in-label-sa-not-found.json': /serviceaccount "app-sa" not found/,
  // ... and a mirror pod that names a ServiceAccount at all.
  'mirror-pod.json':
    /mirror pods may not reference service accounts|may not reference service accounts/,
}

const files = listFixtures('cases/', /\.json$/)

describe(`mutation cases on a real kube-apiserver`, { skip: cluster.skip, concurrency: 4 }, () => {
  const webhooks = new Map<string, ClusterWebhook>()
  /** One webhook per distinct webhook config in the cases (most cases use the default config). */
  const webhookFor = (env: Record<string, string> = {}) => {
    const hook = webhooks.get(JSON.stringify(env))
    if (hook === undefined) throw new Error(`no webhook started for ${JSON.stringify(env)}`)
    return hook
  }
  before(async () => {
    const cp = usable(cluster)
    const configs = caseConfigs(files.map((file) => loadJson(`cases/${file}`) as FixtureCase))
    let index = 0
    for (const [key, env] of configs) {
      index += 1
      webhooks.set(key, await startClusterWebhook(cp, { scope: `cases-${index}`, env }))
    }
  })
  after(async () => {
    for (const hook of webhooks.values()) await hook.close()
  })

  it('registers the shipped configuration with only service → url, the name and one scope expression changed', () => {
    const hook = webhookFor()
    const registered = structuredClone(hook.configuration) as Json
    const shipped = structuredClone(hook.shipped) as Json
    assert.equal(shipped['metadata'].name, 'irsa-webhook')
    assert.equal(registered['metadata'].name, `irsa-webhook-${hook.scope}`)
    const [ours] = registered['webhooks']
    assert.match(ours.clientConfig.url, /^https:\/\/127\.0\.0\.1:\d+\/mutate$/)
    assert.deepEqual(ours.namespaceSelector.matchExpressions.pop(), {
      key: SCOPE_LABEL,
      operator: 'In',
      values: [hook.scope],
    })
    registered['metadata'].name = 'irsa-webhook'
    ours.clientConfig = shipped['webhooks'][0].clientConfig
    assert.deepEqual(registered, shipped)
  })

  for (const file of files) {
    const fixture = loadJson(`cases/${file}`) as FixtureCase
    it(`${file}: ${fixture.description}`, async () => {
      const cp = usable(cluster)
      const hook = webhookFor(fixture.env)
      const podCase: PodCase = forCluster(fixture)
      const webhookNs = await cp.namespace('case', hook.namespaceLabels)
      const controlNs = await cp.namespace('control')
      const rejectedBy = DECIDED_BY_THE_API_SERVER[file]
      if (rejectedBy !== undefined) {
        const created = await createPod(cp, webhookNs, podCase)
        assert.notEqual(created.code, 0, 'the API server admits a pod it should reject itself')
        assert.match(created.stderr, rejectedBy)
        return
      }
      const control = await createPod(cp, controlNs, podCase)
      assert.equal(control.code, 0, control.stderr)
      assert.deepEqual(control.warnings, [], 'no warnings where the webhook is not called')
      const created: CaseOutcome = await createPod(cp, webhookNs, podCase)
      const expected = fixture.expected
      assert.deepEqual(
        created.warnings,
        expected.warnings.map((w) => w.replaceAll('team-a/', `${webhookNs}/`)),
        'kubectl prints the case warnings',
      )
      if (!expected.allowed) {
        assert.notEqual(created.code, 0)
        const message = (expected.message ?? '').replaceAll('team-a/', `${webhookNs}/`)
        assert.ok(
          created.stderr.includes(
            `admission webhook "irsa.vultr.com" denied the request: ${message}`,
          ),
          `kubectl shows the denial with the webhook's message; it printed:\n${created.stderr}`,
        )
        return
      }
      assert.equal(created.code, 0, created.stderr)
      const stored = await storedPod(cp, webhookNs, created.name)
      const controlStored = await storedPod(cp, controlNs, control.name)
      const patched = fastJsonPatch.applyPatch(
        structuredClone(controlStored),
        structuredClone(expected.patch),
        true,
        false,
      ).newDocument
      // The API server's defaulting of what the patch added (e.g. the projected volume's defaultMode), by the
      // API server itself: a dry-run create of the expected pod where no webhook is called.
      const defaulted = await cp.kubectlOk(
        ['create', '--dry-run=server', '-o', 'json', '-n', controlNs, '-f', '-'],
        { input: JSON.stringify(withFreshName(patched)) },
      )
      assert.deepEqual(normalise(stored), normalise(JSON.parse(defaulted)))
    })
  }
})

/** The expected pod under a name of its own, for a dry-run create beside the stored control pod. */
function withFreshName(pod: Json): Json {
  const copy = structuredClone(pod)
  for (const key of ['uid', 'resourceVersion', 'creationTimestamp', 'managedFields'])
    delete copy['metadata'][key]
  copy['metadata'].name = `${copy['metadata'].name}-expected`
  delete copy['status']
  return copy
}
