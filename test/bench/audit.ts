/**
 * `npm run bench:audit`: `irsa-webhook audit` over 10 000 pods and 1 000 ServiceAccounts (100 namespaces, 10
 * Deployments of 10 pods each per namespace; every fifth pod admitted while the webhook was down, the rest mutated by
 * the real webhook) in the loopback fake kube-apiserver (test/support/fake-kube-api-pods.ts; this process), each
 * run a child process so its peak RSS is its own. Target (issue 10): under 10 s and under 150 MB RSS.
 *
 * Rows, interleaved per round (order rotating): `floor` = the same paginated LISTs, parsed, no decision (the least
 * any audit does); `audit` = the command as shipped (one ServiceAccount LIST, owner GETs per ReplicaSet with a
 * finding, JSON output); `audit-get` = the scan reading each ServiceAccount with one GET instead of the LIST (the
 * alternative design, measured). Wall time is spawn → exit (includes Node start-up); medians over the rounds.
 *
 * Every child runs with `--max-semi-space-size=8 --optimize-for-size` (how the CLI is meant to run: package.json
 * `cli`), except `audit-default-heap`: with V8's defaults the young generation of a process walking pages of pods
 * grows, and the peak RSS with it (at 3c6303f, 10 000 pods, one round on this 2-core machine shared with
 * other jobs: audit 113 MB, audit-default-heap 195 MB); `--max-semi-space-size=8` is the server's setting
 * (package.json `start`), `--optimize-for-size` makes V8 grow the heap less eagerly. docs/performance.md (audit
 * benchmark) has the heap-space breakdown behind this (`v8.getHeapSpaceStatistics()`, with its commit).
 *
 * The child is bundled with esbuild first (one file, every dependency inlined, as the image ships the CLI in
 * dist/cli.js); --source runs the TypeScript sources instead (Node strips the types; the unbundled modules cost
 * memory and start-up: with --pods 300, one round, the same machine: floor 136 MB and 1.84 s from the sources
 * against 85 MB and 0.50 s bundled).
 *
 * Options: --rounds N (default 3), --pods N (default 10000), --chunk-size N (default 500), --source.
 * @module
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'
import { buildOptions } from '../../scripts/build.ts'
import {
  admitted,
  podManifest,
  serviceAccount,
  startAuditCluster,
  stored,
} from '../support/audit-cluster.ts'
import { ROOT } from '../support/process.ts'
import { fixed, machineLines, median } from './report.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    pods: { type: 'string', default: '10000' },
    'chunk-size': { type: 'string', default: '500' },
    source: { type: 'boolean', default: false },
  },
})
const ROUNDS = Number(values.rounds)
const PODS = Number(values.pods)
const CHUNK = values['chunk-size']
const NAMESPACES = 100
const SA_PER_NAMESPACE = 10
const PODS_PER_DEPLOYMENT = 10
const TARGET_SECONDS = 10
const TARGET_RSS_MB = 150

type Mode = 'floor' | 'audit' | 'audit-default-heap' | 'audit-get'
interface Run {
  wallMs: number
  ms: number
  maxRssMb: number
  exitCode: number
  pods: number
  findings: number
  requests: number
}

const bundleDir = mkdtempSync(join(tmpdir(), 'irsa-audit-bench-'))
const CHILD = values.source
  ? `${ROOT}test/bench/audit-child.ts`
  : join(bundleDir, 'audit-child.mjs')
if (!values.source) {
  // scripts/build.ts's options (the inlined version, the require() banner, the target), built as dist/cli.js is:
  // one file, no splitting; no source map or metafile, which the run does not read.
  await build({
    ...buildOptions,
    entryPoints: [{ in: `${ROOT}test/bench/audit-child.ts`, out: 'audit-child' }],
    outdir: bundleDir,
    outExtension: { '.js': '.mjs' },
    splitting: false,
    sourcemap: false,
    legalComments: 'none',
    metafile: false,
  })
}

const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `ns-${String(i).padStart(3, '0')}`)
const cluster = await startAuditCluster(namespaces)
for (const ns of namespaces) {
  for (let s = 0; s < SA_PER_NAMESPACE; s++)
    cluster.putServiceAccount(serviceAccount(ns, `sa-${s}`))
}
const template = await admitted(
  podManifest({ namespace: 'ns-000', name: 'template', serviceAccount: 'sa-0' }),
  cluster.serviceAccounts,
)
const podsPerNamespace = Math.ceil(PODS / NAMESPACES)
let made = 0
for (const ns of namespaces) {
  for (let i = 0; i < podsPerNamespace && made < PODS; i++, made++) {
    const deployment = `app-${Math.floor(i / PODS_PER_DEPLOYMENT)}`
    const hash = '7c9f5d6b8'
    const replicaSet = `${deployment}-${hash}`
    if (i % PODS_PER_DEPLOYMENT === 0) {
      cluster.pods.putOwner(`/apis/apps/v1/namespaces/${ns}/replicasets`, {
        metadata: {
          name: replicaSet,
          namespace: ns,
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, controller: true },
          ],
        },
      })
    }
    const spec = {
      namespace: ns,
      name: `${replicaSet}-${String(i).padStart(5, '0')}`,
      serviceAccount: `sa-${Math.floor(i / PODS_PER_DEPLOYMENT) % SA_PER_NAMESPACE}`,
      owner: { kind: 'ReplicaSet', name: replicaSet },
      labels: { app: deployment, 'pod-template-hash': hash },
    }
    const manifest = podManifest(spec)
    const pod = i % 5 === 0 ? manifest : { ...manifest, spec: structuredClone(template['spec']) }
    ;(pod['spec'] as Record<string, unknown>)['serviceAccountName'] = spec.serviceAccount
    cluster.pods.put(stored(pod))
  }
}

/** How the audit is meant to run (package.json `cli`; the CronJob's command); see the module comment. */
const NODE_FLAGS = ['--max-semi-space-size=8', '--optimize-for-size']

function runChild(mode: Mode): Promise<Run> {
  cluster.api.requests.length = 0
  const flags = mode === 'audit-default-heap' ? [] : NODE_FLAGS
  const childMode = mode === 'audit-default-heap' ? 'audit' : mode
  const started = performance.now()
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...flags, CHILD, childMode, cluster.api.kubeconfigPath, CHUNK],
      { cwd: ROOT, maxBuffer: 1 << 24 },
      (error, stdout, stderr) => {
        const wallMs = performance.now() - started
        if (error !== null && !stdout)
          return reject(new Error(`${mode}: ${stderr || error.message}`))
        const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Omit<
          Run,
          'wallMs' | 'requests'
        >
        resolve({ ...result, wallMs, requests: cluster.api.requests.length })
      },
    )
  })
}

const MODES: readonly Mode[] = ['floor', 'audit', 'audit-default-heap', 'audit-get']
const runs = new Map<Mode, Run[]>(MODES.map((mode) => [mode, []]))
for (let round = 0; round < ROUNDS; round++) {
  const order = MODES.map((_, i) => MODES[(i + round) % MODES.length] as Mode)
  for (const mode of order) runs.get(mode)?.push(await runChild(mode))
}
await cluster.close()
rmSync(bundleDir, { recursive: true, force: true })

const row = (mode: Mode) => {
  const list = runs.get(mode) ?? []
  return {
    wallS: median(list.map((r) => r.wallMs)) / 1000,
    inProcessS: median(list.map((r) => r.ms)) / 1000,
    rssMb: Math.max(...list.map((r) => r.maxRssMb)),
    pods: list[0]?.pods ?? 0,
    findings: list[0]?.findings ?? 0,
    requests: list[0]?.requests ?? 0,
  }
}

console.log('irsa-webhook audit benchmark (loopback fake kube-apiserver; each run a child process)')
for (const line of machineLines().slice(0, 2)) console.log(line)
console.log(`node flags: ${NODE_FLAGS.join(' ')} (audit-default-heap: none)`)
console.log(
  `child: ${values.source ? 'TypeScript sources (--source)' : 'esbuild bundle, like dist/cli.js'}`,
)
console.log(
  `${made} pods, ${NAMESPACES * SA_PER_NAMESPACE} ServiceAccounts, ${NAMESPACES} namespaces, chunk size ${CHUNK}, ${ROUNDS} rounds (interleaved)\n`,
)
console.log(
  `${'run'.padEnd(18)} ${'wall s'.padStart(7)} ${'in-proc s'.padStart(9)} ${'max RSS MB'.padStart(10)} ${'pods'.padStart(6)} ${'findings'.padStart(8)} ${'API requests'.padStart(12)}`,
)
const rows = Object.fromEntries(MODES.map((mode) => [mode, row(mode)]))
for (const mode of MODES) {
  const r = rows[mode]
  if (r === undefined) continue
  console.log(
    `${mode.padEnd(18)} ${fixed(r.wallS).padStart(7)} ${fixed(r.inProcessS).padStart(9)} ${fixed(r.rssMb, 0).padStart(10)} ${String(r.pods).padStart(6)} ${String(r.findings).padStart(8)} ${String(r.requests).padStart(12)}`,
  )
}
const audit = rows['audit']
const floor = rows['floor']
const get = rows['audit-get']
if (audit && floor && get) {
  console.log(
    `\naudit/floor: wall ${fixed(audit.wallS / floor.wallS)}x, RSS ${fixed(audit.rssMb / floor.rssMb)}x; audit-get/audit: wall ${fixed(get.wallS / audit.wallS)}x, requests ${fixed(get.requests / audit.requests)}x`,
  )
  const time = audit.wallS < TARGET_SECONDS
  const memory = audit.rssMb < TARGET_RSS_MB
  console.log(
    `${time ? 'PASS' : 'MISS'}  audit wall time: ${fixed(audit.wallS)} s (target < ${TARGET_SECONDS} s)`,
  )
  console.log(
    `${memory ? 'PASS' : 'MISS'}  audit peak RSS: ${fixed(audit.rssMb, 0)} MB (target < ${TARGET_RSS_MB} MB)`,
  )
  if (!time || !memory) process.exitCode = 1
}
