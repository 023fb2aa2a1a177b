/**
 * One measured run for `npm run bench:audit`, in its own process so its RSS is its own: `audit` (the command as
 * shipped, `-o json`), `audit-get` (the scan and owner lookups, reading each ServiceAccount with a GET instead of
 * one LIST; no output), or `floor`
 * (the same paginated pod and ServiceAccount LISTs, parsed, with no decision: the least any audit must do).
 * Prints one JSON line: { ms, maxRssMb, exitCode, pods, findings, requests }.
 *
 * Usage: node test/bench/audit-child.ts audit|audit-get|floor <kubeconfig> <chunk-size>
 * @module
 */
import { createOwnerResolver } from '../../cli/audit/owners.ts'
import { runCli } from '../../cli/main.ts'
import { createKubeClient, loadKubeConfig } from '../../cli/shared/kube.ts'
import { forEachListed } from '../../cli/shared/kube-list.ts'
import { scanPods } from '../../cli/shared/pod-scan.ts'
import { reviewSettingsFrom } from '../../cli/shared/review-settings.ts'

const [mode = 'audit', kubeconfig = '', chunk = '500'] = process.argv.slice(2)
const started = performance.now()
let exitCode = 0
let pods = 0
let findings = 0

if (mode === 'audit') {
  // Counted, not kept or parsed: the bench's own copies would add to the RSS it measures.
  exitCode = await runCli(
    ['audit', '--kubeconfig', kubeconfig, '-o', 'json', '--chunk-size', chunk],
    {
      out: (text) => {
        findings += text.match(/"problem": /g)?.length ?? 0
        pods = Number(/"scanned": (\d+)/.exec(text)?.[1] ?? pods)
      },
      err: (text) => process.stderr.write(text),
      readFile: () => '',
    },
  )
} else if (mode === 'audit-get') {
  const client = createKubeClient(loadKubeConfig(kubeconfig))
  const scan = await scanPods({
    client,
    namespace: undefined,
    configurationName: 'irsa-webhook',
    chunkSize: Number(chunk),
    settings: reviewSettingsFrom([]),
    note: (line) => process.stderr.write(`${line}\n`),
    serviceAccountReads: 'get',
  })
  // The owner lookups the command does too, so the rows differ only in how ServiceAccounts are read.
  const ownerOf = createOwnerResolver(client)
  for (const finding of scan.findings) await ownerOf(finding)
  pods = scan.counts.scanned
  findings = scan.findings.length
} else {
  const client = createKubeClient(loadKubeConfig(kubeconfig))
  const count = () => {
    pods += 1
  }
  await forEachListed(
    client,
    { path: '/api/v1/serviceaccounts', resource: 'serviceaccounts', namespace: undefined },
    Number(chunk),
    () => undefined,
  )
  await forEachListed(
    client,
    { path: '/api/v1/pods', resource: 'pods', namespace: undefined },
    Number(chunk),
    count,
  )
}

process.stdout.write(
  `${JSON.stringify({
    ms: performance.now() - started,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    exitCode,
    pods,
    findings,
  })}\n`,
)
