/**
 * Prints the `irsa-webhook audit` runs quoted in docs/cli.md, against the loopback fake kube-apiserver loaded with
 * `populateExample` (the same pods test/cli/audit/audit.test.ts checks). Reproduce: node test/support/audit-demo.ts
 * @module
 */

import { EXAMPLE_NAMESPACES, populateExample, startAuditCluster } from './audit-cluster.ts'
import { runInProcess } from './cli-fake-cluster.ts'

const cluster = await startAuditCluster(EXAMPLE_NAMESPACES)
await populateExample(cluster)
cluster.pods.addBudget({
  namespace: 'shop',
  name: 'web',
  matchLabels: { app: 'web' },
  disruptionsAllowed: 0,
  desiredHealthy: 3,
  currentHealthy: 3,
})

async function show(args: string[]): Promise<void> {
  const run = await runInProcess(['audit', '--kubeconfig', cluster.api.kubeconfigPath, ...args])
  console.log(`$ irsa-webhook audit ${args.join(' ')}`.trimEnd())
  process.stdout.write(run.stdout + run.stderr)
  console.log(`$ echo $?\n${run.code}\n`)
}

await show([])
await show(['-n', 'batch', '-o', 'json'])
await show(['--heal', '--events'])
await cluster.close()
