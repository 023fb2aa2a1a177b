/**
 * Prints the `irsa-webhook audit` runs quoted in docs/cli.md, against the loopback fake kube-apiserver loaded with
 * `populateExample` (the same pods test/integration/cli-audit.test.ts checks). Reproduce: node test/support/audit-demo.ts
 * @module
 */
import { runCli } from '../../function/cli/main.ts'
import { EXAMPLE_NAMESPACES, populateExample, startAuditCluster } from './audit-cluster.ts'

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
  let out = ''
  let err = ''
  const code = await runCli(['audit', '--kubeconfig', cluster.api.kubeconfigPath, ...args], {
    out: (text) => {
      out += text
    },
    err: (text) => {
      err += text
    },
    readFile: () => '',
  })
  console.log(`$ irsa-webhook audit ${args.join(' ')}`.trimEnd())
  process.stdout.write(out + err)
  console.log(`$ echo $?\n${code}\n`)
}

await show([])
await show(['-n', 'batch', '-o', 'json'])
await show(['--heal', '--events'])
await cluster.close()
