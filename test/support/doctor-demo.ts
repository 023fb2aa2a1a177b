/**
 * Prints the `irsa-webhook doctor` runs quoted in docs/cli.md, against the loopback fake kube-apiserver with the
 * shipped manifests (test/support/cli-fake-cluster.ts, the cluster the doctor tests break one thing at a time):
 * a healthy classic installation, the same broken on purpose, a healthy Knative one, and the classic one with four
 * pods stored unmutated. The address (a random loopback port) and the certificate dates change from run to run.
 * Reproduce: node test/support/doctor-demo.ts
 * @module
 */

import { podManifest, stored } from './audit-cluster.ts'
import {
  type FakeCluster,
  putEndpoints,
  runInProcess,
  startFakeCluster,
} from './cli-fake-cluster.ts'

async function show(cluster: FakeCluster, args: string[]): Promise<void> {
  const run = await runInProcess(['doctor', '--kubeconfig', cluster.api.kubeconfigPath, ...args])
  console.log(`$ npm run -s cli -- doctor ${args.join(' ')}`)
  process.stdout.write(run.stdout + run.stderr)
  console.log(`$ echo $?\n${run.code}\n`)
}

const classic = await startFakeCluster('classic')
await show(classic, ['--service-account', 'default/app'])

// No ready webhook pod (the API server dials the ClusterIP and is refused) and no ClusterRoleBinding.
putEndpoints(classic, false)
classic.webhookUp = false
classic.allowedVerbs.clear()
await show(classic, ['--service-account', 'default/app'])
await classic.close()

const knative = await startFakeCluster('knative')
await show(knative, ['-s', 'default/app'])
await knative.close()

// Pods admitted while the webhook was down: stored without the patch.
const missing = await startFakeCluster('classic')
for (const name of ['web-7d9f8-4xkqp', 'web-7d9f8-9zt2m', 'worker-0', 'worker-1']) {
  missing.pods.put(stored(podManifest({ namespace: 'default', name, serviceAccount: 'app' })))
}
await show(missing, ['--service-account', 'default/app'])
await missing.close()
