/**
 * `irsa-webhook mutate`: runs the webhook's own decision (`reviewPod`) on manifests, without a cluster.
 * @module
 */
import { parseArgs } from 'node:util'
import type { AddOperation } from '../../function/mutate-pod.ts'
import type { ReviewSettings } from '../../function/review-pod.ts'
import { reviewPod } from '../../function/review-pod.ts'
import { createStaticServiceAccountSource } from '../../function/service-accounts.ts'
import { EXIT, type Io, oneOf, UsageError } from '../shared/io.ts'
import {
  applyAddPatch,
  describe,
  podCreateRequest,
  podOf,
  rebase,
  type Workload,
} from '../shared/manifests.ts'
import { reviewSettingsFrom } from '../shared/review-settings.ts'
import { formatDocuments, isServiceAccount, parseDocuments, withNamespace } from './documents.ts'
import { annotationHint, isRefused, reportDecision } from './report.ts'

const MUTATE_USAGE = `Usage: irsa-webhook mutate [options] <manifest.yaml|-> [...]

Runs the webhook's decision on Pods and pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job, CronJob, PodTemplate) and prints the mutated manifests. No cluster needed.
ServiceAccounts come from --service-account files and from ServiceAccount documents in the input.

Options:
  -s, --service-account FILE  ServiceAccount manifest(s) (repeatable; several documents per file)
  -n, --namespace NS          namespace for documents without metadata.namespace (default: default)
      --patch                 print the JSON Patch per workload instead (paths relative to the pod)
      --manifest-paths        with --patch: paths relative to the manifest (for kubectl patch --type json)
      --set KEY=VALUE         webhook config, e.g. --set INVALID_ROLE_POLICY=warn (repeatable)
  -o, --output yaml|json      output format (default: yaml)

Outcomes and warnings go to stderr. Exit code 1 when the webhook would refuse a pod (e.g. an invalid role).`

interface MutateOptions {
  readonly files: readonly string[]
  readonly serviceAccountFiles: readonly string[]
  readonly namespace: string
  readonly patch: boolean
  readonly manifestPaths: boolean
  readonly output: 'yaml' | 'json'
  readonly settings: ReviewSettings
}

function parseMutateArgs(argv: string[]): MutateOptions | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'service-account': { type: 'string', short: 's', multiple: true, default: [] },
      namespace: { type: 'string', short: 'n', default: 'default' },
      patch: { type: 'boolean', default: false },
      'manifest-paths': { type: 'boolean', default: false },
      set: { type: 'string', multiple: true, default: [] },
      output: { type: 'string', short: 'o', default: 'yaml' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  if (positionals.length === 0)
    throw new UsageError('mutate needs a manifest file (or - for stdin)')
  const output = oneOf('--output', values.output, ['yaml', 'json'])
  const settings = reviewSettingsFrom(values.set)
  return {
    files: positionals,
    serviceAccountFiles: values['service-account'],
    namespace: values.namespace,
    patch: values.patch,
    manifestPaths: values['manifest-paths'],
    output,
    settings,
  }
}

function readAll(io: Io, files: readonly string[]): unknown[] {
  return files.flatMap((file) => parseDocuments(io.readFile(file), file))
}

function annotationsOf(doc: unknown): Record<string, string> {
  const metadata = (doc as { metadata?: { annotations?: Record<string, string> } }).metadata
  return metadata?.annotations ?? {}
}

function hintFor(serviceAccounts: readonly unknown[], ref: string | undefined): string {
  const match = serviceAccounts.find((sa) => {
    const metadata = (sa as { metadata?: { name?: string; namespace?: string } }).metadata
    return `${metadata?.namespace}/${metadata?.name}` === ref
  })
  return match === undefined ? '' : annotationHint(annotationsOf(match))
}

interface Context {
  readonly options: MutateOptions
  readonly io: Io
  readonly serviceAccounts: readonly unknown[]
  readonly source: ReturnType<typeof createStaticServiceAccountSource>
}

/** Reviews one workload; returns its output (mutated manifest or patch text) and whether it was refused. */
async function mutateOne(document: unknown, workload: Workload, uid: string, context: Context) {
  const { options, io } = context
  const deps = {
    serviceAccounts: context.source,
    settings: options.settings,
    signal: () => AbortSignal.timeout(10_000),
  }
  const decision = await reviewPod(podCreateRequest(workload, uid), deps)
  const hint =
    decision.outcome === 'not-annotated'
      ? hintFor(context.serviceAccounts, decision.serviceAccount)
      : ''
  for (const line of reportDecision(describe(workload), decision, hint)) {
    io.err(`${line}\n`)
  }
  const patch = decision.kind === 'answer' ? (decision.answer.patch ?? []) : []
  const output = options.patch
    ? patchOutput(workload, patch, options, io)
    : mutated(document, workload, patch)
  return { output, refused: isRefused(decision) }
}

/** Runs `mutate`; returns the exit code. */
export async function runMutate(argv: string[], io: Io): Promise<number> {
  const options = parseMutateArgs(argv)
  if (options === 'help') {
    io.out(`${MUTATE_USAGE}\n`)
    return EXIT.ok
  }
  const documents = readAll(io, options.files)
  const serviceAccounts = [...readAll(io, options.serviceAccountFiles), ...documents]
    .filter(isServiceAccount)
    .map((sa) => withNamespace(sa, options.namespace))
  const source = createStaticServiceAccountSource(serviceAccounts)
  const context: Context = { options, io, serviceAccounts, source }
  const results: unknown[] = []
  let refused = false
  for (const [index, document] of documents.entries()) {
    const workload = podOf(document, options.namespace)
    if (workload === undefined) {
      if (!options.patch) results.push(document)
      continue
    }
    const result = await mutateOne(document, workload, `irsa-cli-${index + 1}`, context)
    refused ||= result.refused
    results.push(result.output)
  }
  io.out(options.patch ? results.join('') : formatDocuments(results, options.output))
  return refused ? EXIT.failed : EXIT.ok
}

function mutated(document: unknown, workload: Workload, patch: readonly AddOperation[]) {
  return applyAddPatch(document, rebase(patch, workload.podPath))
}

function pathNote(podPath: string, manifestPaths: boolean): string {
  if (podPath === '') return 'patch paths are relative to the pod (the manifest itself)'
  if (manifestPaths) return `patch paths are relative to the manifest (the pod is at ${podPath})`
  return `patch paths are relative to the pod (in the manifest: prefix ${podPath}, or use --manifest-paths)`
}

function patchOutput(
  workload: Workload,
  patch: readonly AddOperation[],
  options: MutateOptions,
  io: Io,
): string {
  const base = options.manifestPaths ? workload.podPath : ''
  if (patch.length > 0) io.err(`  ${pathNote(workload.podPath, options.manifestPaths)}\n`)
  return `${JSON.stringify(rebase(patch, base), null, 2)}\n`
}
