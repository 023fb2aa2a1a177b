// doctor's audit check against the fake cluster with the shipped manifests: passes with no pod missing its identity,
// fails naming the first pods and the fix when some are (the same scan as irsa-webhook audit).

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { podManifest, stored } from '../../support/audit-cluster.ts'
import { type FakeCluster, runInProcess, startFakeCluster } from '../../support/cli-fake-cluster.ts'

const TITLE = 'pods missing their identity'

function line(stdout: string): string {
  return stdout.split('\n').find((l) => l.includes(`${TITLE} — `)) ?? ''
}

describe('irsa-webhook doctor: pods missing their identity', () => {
  let cluster: FakeCluster
  beforeEach(async () => {
    cluster = await startFakeCluster('classic')
  })
  afterEach(() => cluster.close())

  const doctor = () =>
    runInProcess(['doctor', '--kubeconfig', cluster.api.kubeconfigPath, '-s', 'default/app'])

  test('passes when every audited pod has its identity', async () => {
    cluster.pods.put(
      stored(podManifest({ namespace: 'default', name: 'plain', serviceAccount: 'none' })),
    )
    const run = await doctor()
    assert.equal(run.code, 0, run.stdout)
    assert.match(line(run.stdout), /^✔ pods missing their identity — none of 1 pods/)
  })

  test('fails with the count, the first three pods and the fix', async () => {
    for (const name of ['a', 'b', 'c', 'd']) {
      cluster.pods.put(
        stored(podManifest({ namespace: 'default', name: `web-${name}`, serviceAccount: 'app' })),
      )
    }
    // Excluded by the namespaceSelector: not counted.
    cluster.pods.put(
      stored(podManifest({ namespace: 'kube-system', name: 'sys', serviceAccount: 'app' })),
    )
    const run = await doctor()
    assert.equal(run.code, 1)
    assert.match(
      line(run.stdout),
      /^✘ pods missing their identity — 4 pods run without the Vultr identity of their ServiceAccount: default\/web-a, default\/web-b, default\/web-c and 1 more$/,
    )
    assert.match(run.stdout, /fix: irsa-webhook audit --heal .*components\/audit-cronjob/)
  })

  test('warns (does not fail) when the pods cannot be listed', async () => {
    cluster.api.fault({ path: '/api/v1/pods', status: 403 })
    const run = await doctor()
    assert.match(
      line(run.stdout),
      /^! pods missing their identity — the pod listing failed: cannot list pods cluster-wide: forbidden/,
    )
  })
})
