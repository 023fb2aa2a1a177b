/**
 * `irsa-webhook audit`: lists every pod the webhook would still change today (pods admitted while the webhook was
 * unreachable under `failurePolicy: Ignore`), grouped by owner; `--heal` evicts what a controller recreates,
 * `--events` tells each pod's owner through a Warning Event.
 * @module
 */
import { parseArgs } from 'node:util'
import type { ReviewSettings } from '../../function/review-pod.ts'
import { EXIT, type Io, oneOf, UsageError } from '../shared/io.ts'
import { createKubeClient, type KubeClient, loadKubeConfig } from '../shared/kube.ts'
import { ClusterReadError } from '../shared/kube-list.ts'
import {
  DEFAULT_CHUNK_SIZE,
  type Finding,
  type OwnerRef,
  type Problem,
  type ScanResult,
  scanPods,
} from '../shared/pod-scan.ts'
import { reviewSettingsFrom } from '../shared/review-settings.ts'
import { type Action, heal, recordEvent } from './heal.ts'
import { createOwnerResolver } from './owners.ts'

/** Exit codes of `audit`: 0 nothing missing, 1 something missing, 2 usage error, 3 the cluster could not be read. */
const AUDIT_EXIT = { ...EXIT, unreadable: 3 } as const

const AUDIT_USAGE = `Usage: irsa-webhook audit [options]

Lists every pod the webhook would still change today — pods admitted without their identity (the webhook was
unreachable and failurePolicy Ignore let them through) — by running the webhook's own decision on each stored pod
and its ServiceAccount. Also reports pods whose ServiceAccount has an invalid role (invalid-role), pods blocked by
a foreign ${'`'}vultr-irsa-token${'`'} volume (volume-conflict) and pods whose AWS_ROLE_ARN differs from the
ServiceAccount's current role (role-differs, informational). Namespaces and labels the MutatingWebhookConfiguration
excludes, mirror pods and finished pods are not audited.

Options:
  -n, --namespace NS        audit one namespace (default: all namespaces)
      --configuration NAME  the MutatingWebhookConfiguration whose selectors apply (default: irsa-webhook)
  -o, --output table|json   output format (default: table)
      --heal                evict pods owned by a ReplicaSet, StatefulSet or DaemonSet (Eviction API: honours
                            PodDisruptionBudgets), one per owner per run; bare and Job pods are only reported
      --max-evictions N     with --heal: at most N evictions per run (default: 10)
      --heal-role-changes   with --heal: also evict role-differs pods
      --events              record a Warning Event (reason IRSACredentialsMissing) on each pod found
      --chunk-size N        pods per LIST page (default: ${DEFAULT_CHUNK_SIZE})
      --set KEY=VALUE       the webhook's config the decision reads, when not the defaults
                            (STS_ENDPOINT, TOKEN_AUDIENCE, TOKEN_EXPIRATION_SECONDS, DEFAULT_REGION,
                            INVALID_ROLE_POLICY; repeatable)
      --job                 Job behaviour (the heal CronJob): exit 0 whenever the listing was complete, whatever
                            was found; findings are in the output and, with --events, Events
      --kubeconfig PATH     kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)

Exit codes: 0 no pod is missing its identity; 1 some pod is (also when --heal evicted it: the next run
confirms; 0 with --job); 2 usage error; 3 the cluster could not be read (the message says what failed; findings
so far are printed).`

interface AuditOptions {
  readonly namespace: string | undefined
  readonly configuration: string
  readonly output: 'table' | 'json'
  readonly heal: boolean
  readonly maxEvictions: number
  readonly healRoleChanges: boolean
  readonly events: boolean
  readonly chunkSize: number
  readonly set: string[]
  readonly job: boolean
  readonly kubeconfig: string | undefined
}

function count(value: string, flag: string, min: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`${flag} must be a whole number >= ${min}, got ${JSON.stringify(value)}`)
  }
  return Number(value)
}

function parseAuditArgs(argv: string[]): AuditOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      namespace: { type: 'string', short: 'n' },
      configuration: { type: 'string', default: 'irsa-webhook' },
      output: { type: 'string', short: 'o', default: 'table' },
      heal: { type: 'boolean', default: false },
      'max-evictions': { type: 'string', default: '10' },
      'heal-role-changes': { type: 'boolean', default: false },
      events: { type: 'boolean', default: false },
      'chunk-size': { type: 'string', default: String(DEFAULT_CHUNK_SIZE) },
      set: { type: 'string', multiple: true, default: [] },
      job: { type: 'boolean', default: false },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  const output = oneOf('--output', values.output, ['table', 'json'])
  if (values['heal-role-changes'] && !values.heal) {
    throw new UsageError('--heal-role-changes needs --heal')
  }
  if (values.namespace === '') throw new UsageError('--namespace needs a namespace name')
  return {
    namespace: values.namespace,
    configuration: values.configuration,
    output,
    heal: values.heal,
    maxEvictions: count(values['max-evictions'], '--max-evictions', 0),
    healRoleChanges: values['heal-role-changes'],
    events: values.events,
    chunkSize: count(values['chunk-size'], '--chunk-size', 1),
    set: values.set,
    job: values.job,
    kubeconfig: values.kubeconfig,
  }
}

/** One reported pod, as printed. */
export interface AuditEntry {
  readonly namespace: string
  readonly name: string
  readonly serviceAccount: string
  readonly problem: Problem
  readonly detail: string
  readonly owner: OwnerRef | null
  action?: Action
  reason?: string
  event?: string
}

export interface AuditReport {
  readonly pods: AuditEntry[]
  readonly skipped: ScanResult['skipped']
  readonly summary: AuditSummary
}

type AuditSummary = ReturnType<typeof summarize>

const PROBLEMS: readonly Problem[] = ['missing', 'role-differs', 'invalid-role', 'volume-conflict']
const ACTIONS: readonly Action[] = ['evicted', 'blocked-by-pdb', 'reported', 'skipped', 'failed']

function tally<T extends string>(
  keys: readonly T[],
  values: readonly (T | undefined)[],
): Record<T, number> {
  return Object.fromEntries(
    keys.map((key) => [key, values.filter((v) => v === key).length]),
  ) as Record<T, number>
}

function summarize(scan: ScanResult, entries: readonly AuditEntry[], options: AuditOptions) {
  const { counts } = scan
  return {
    scope: options.namespace ?? 'all namespaces',
    scanned: counts.scanned,
    audited:
      counts.scanned -
      counts.finished -
      counts.mirror -
      counts.excludedNamespace -
      counts.excludedLabels,
    ok: counts.ok,
    ...tally(
      PROBLEMS,
      entries.map((e) => e.problem),
    ),
    skipped: scan.skipped.length,
    notAudited: {
      finished: counts.finished,
      mirror: counts.mirror,
      excludedNamespace: counts.excludedNamespace,
      excludedLabels: counts.excludedLabels,
    },
    ...(options.heal
      ? {
          actions: tally(
            ACTIONS,
            entries.map((e) => e.action),
          ),
        }
      : {}),
    complete: scan.failure === undefined,
    ...(scan.failure === undefined ? {} : { error: scan.failure }),
  }
}

async function buildReport(
  client: KubeClient,
  options: AuditOptions,
  settings: ReviewSettings,
  io: Io,
): Promise<AuditReport> {
  const note = (line: string) => io.err(`irsa-webhook audit: ${line}\n`)
  const scan = await scanPods({
    client,
    namespace: options.namespace,
    configurationName: options.configuration,
    chunkSize: options.chunkSize,
    settings,
    note,
  })
  const ownerOf = createOwnerResolver(client)
  const owners: (OwnerRef | null)[] = []
  for (const finding of scan.findings) owners.push(await ownerOf(finding))
  const entries: AuditEntry[] = scan.findings.map((finding, index) =>
    entryOf(finding, owners[index] ?? null),
  )
  if (options.heal && scan.failure === undefined) {
    const outcomes = await heal(scan.findings, owners, {
      client,
      maxEvictions: options.maxEvictions,
      healRoleChanges: options.healRoleChanges,
      settings,
      serviceAccounts: scan.serviceAccounts,
    })
    for (const [index, outcome] of outcomes.entries()) Object.assign(entries[index] ?? {}, outcome)
  } else if (options.heal) {
    note('the listing was incomplete: nothing was evicted')
  }
  if (options.events) await recordEvents(client, scan.findings, entries, note)
  return { pods: entries, skipped: scan.skipped, summary: summarize(scan, entries, options) }
}

async function recordEvents(
  client: KubeClient,
  findings: readonly Finding[],
  entries: AuditEntry[],
  note: (line: string) => void,
): Promise<void> {
  const now = new Date()
  for (const [index, finding] of findings.entries()) {
    const event = await recordEvent(client, finding, now)
    const entry = entries[index]
    if (entry !== undefined) entry.event = event
    if (event.startsWith('failed'))
      note(`event on pod ${finding.namespace}/${finding.name}: ${event}`)
  }
}

function entryOf(finding: Finding, owner: OwnerRef | null): AuditEntry {
  return {
    namespace: finding.namespace,
    name: finding.name,
    serviceAccount: finding.serviceAccount,
    problem: finding.problem,
    detail: finding.detail,
    owner,
  }
}

function ownerTitle(entry: AuditEntry): string {
  if (entry.owner === null) return 'no owner (bare pods)'
  const knative = entry.owner.apiVersion?.startsWith('serving.knative.dev') ? 'Knative ' : ''
  return `${knative}${entry.owner.kind} ${entry.namespace}/${entry.owner.name}`
}

function columns(rows: readonly string[][]): string {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? []
  return rows
    .map((row) =>
      `  ${row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')}`.trimEnd(),
    )
    .join('\n')
}

function formatTable(report: AuditReport, healed: boolean): string {
  const groups = new Map<string, AuditEntry[]>()
  for (const entry of report.pods) {
    const title = ownerTitle(entry)
    groups.set(title, [...(groups.get(title) ?? []), entry])
  }
  const header = [
    'POD',
    'SERVICEACCOUNT',
    'PROBLEM',
    ...(healed ? ['ACTION', 'REASON'] : []),
    'DETAIL',
  ]
  const blocks = [...groups]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([title, entries]) => {
      const rows = entries.map((e) => [
        e.name,
        e.serviceAccount,
        e.problem,
        ...(healed ? [e.action ?? '', e.reason ?? ''] : []),
        e.detail,
      ])
      return `${title}\n${columns([header, ...rows])}`
    })
  if (report.skipped.length > 0) {
    const rows = report.skipped.map((s) => [`${s.namespace}/${s.name}`, s.reason])
    blocks.push(`skipped (could not be audited)\n${columns([['POD', 'REASON'], ...rows])}`)
  }
  return `${[...blocks, summaryLine(report.summary)].join('\n\n')}\n`
}

function summaryLine(summary: AuditSummary): string {
  const not = summary.notAudited
  const found = PROBLEMS.map((p) => `${summary[p]} ${p}`).join(', ')
  const lines = [
    `${summary.scanned} pods scanned (${summary.scope}): ${summary.audited} audited, ${summary.ok} fine, ${found}, ${summary.skipped} skipped`,
    `not audited: ${not.finished} finished, ${not.mirror} mirror, ${not.excludedNamespace} in excluded namespaces, ${not.excludedLabels} excluded by labels`,
  ]
  const { actions } = summary
  if (actions !== undefined)
    lines.push(`heal: ${ACTIONS.map((a) => `${actions[a]} ${a}`).join(', ')}`)
  if (!summary.complete) lines.push(`INCOMPLETE: ${summary.error}`)
  return lines.join('\n')
}

/** Runs `audit`; returns the exit code. */
export async function runAudit(argv: string[], io: Io): Promise<number> {
  const options = parseAuditArgs(argv)
  if (options === 'help') {
    io.out(`${AUDIT_USAGE}\n`)
    return AUDIT_EXIT.ok
  }
  const settings = reviewSettingsFrom(options.set)
  let report: AuditReport
  try {
    const client = createKubeClient(loadKubeConfig(options.kubeconfig))
    report = await buildReport(client, options, settings, io)
  } catch (error) {
    const message =
      error instanceof ClusterReadError
        ? error.message
        : `cannot read the cluster: ${error instanceof Error ? error.message : String(error)}`
    io.err(`irsa-webhook audit: ${message}\n`)
    return AUDIT_EXIT.unreadable
  }
  io.out(
    options.output === 'json'
      ? `${JSON.stringify(report, null, 2)}\n`
      : formatTable(report, options.heal),
  )
  if (!report.summary.complete) {
    io.err(`irsa-webhook audit: ${report.summary.error}\n`)
    return AUDIT_EXIT.unreadable
  }
  const missing = report.pods.filter((entry) => entry.problem === 'missing').length
  if (missing > 0 && options.job)
    io.err(
      `irsa-webhook audit: ${missing} pod(s) missing their identity, reported above (exit 0: --job)\n`,
    )
  return missing > 0 && !options.job ? AUDIT_EXIT.failed : AUDIT_EXIT.ok
}
