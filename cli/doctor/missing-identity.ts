/**
 * Doctor check: the audit's count of pods running without their identity (admitted while the webhook was
 * unreachable), the first few named, and the fix.
 * @module
 */
import { DEFAULT_CHUNK_SIZE, scanPods } from '../shared/pod-scan.ts'
import { reviewSettingsFrom } from '../shared/review-settings.ts'
import { type CheckResult, type DoctorContext, fail, pass, warn } from './context.ts'

const TITLE = 'pods missing their identity'
const SHOWN = 3
const FIX =
  'irsa-webhook audit --heal (evicts one pod per owner per run; bare and Job pods need a restart by hand), ' +
  'or enable the audit CronJob component (components/audit-cronjob) so it runs every few minutes'

/**
 * Runs the audit's scan (read-only) over all namespaces and fails when some pod is missing its identity. The
 * webhook's selectors are the ones doctor read already; only when it could not are they read again.
 */
export async function checkMissingIdentity(context: DoctorContext): Promise<CheckResult> {
  let scan: Awaited<ReturnType<typeof scanPods>>
  try {
    scan = await scanPods({
      client: context.client,
      namespace: undefined,
      configurationName: context.configurationName,
      chunkSize: DEFAULT_CHUNK_SIZE,
      settings: reviewSettingsFrom([]),
      note: () => undefined,
      ...(context.webhook === undefined ? {} : { selectors: context.webhook }),
    })
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return warn(
      TITLE,
      `cannot audit pods: ${message}`,
      'run irsa-webhook audit with access to list pods, serviceaccounts and namespaces',
    )
  }
  const missing = scan.findings.filter((finding) => finding.problem === 'missing')
  const names = missing
    .slice(0, SHOWN)
    .map((finding) => `${finding.namespace}/${finding.name}`)
    .join(', ')
  const more = missing.length > SHOWN ? ` and ${missing.length - SHOWN} more` : ''
  if (scan.failure !== undefined) {
    const sofar = missing.length > 0 ? `; so far ${missing.length} missing: ${names}${more}` : ''
    return warn(
      TITLE,
      `the pod listing failed: ${scan.failure}${sofar}`,
      'rerun; irsa-webhook audit lists them',
    )
  }
  if (missing.length === 0) {
    return pass(TITLE, `none of ${scan.counts.scanned} pods (irsa-webhook audit lists the details)`)
  }
  const pods =
    missing.length === 1
      ? '1 pod runs without the Vultr identity of its ServiceAccount'
      : `${missing.length} pods run without the Vultr identity of their ServiceAccount`
  return fail(TITLE, `${pods}: ${names}${more}`, FIX)
}
