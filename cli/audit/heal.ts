/**
 * `audit --heal` and `audit --events`: the only parts of the audit that change the cluster, both bounded.
 *
 * Heal evicts (policy/v1 Eviction, which honours PodDisruptionBudgets) pods a controller recreates — owned by a
 * ReplicaSet, StatefulSet or DaemonSet — at most one per owner per run and at most `maxEvictions` in total; the
 * recreated pod goes through the webhook again. A 429 is `blocked-by-pdb` (retried next run), never forced. Bare
 * pods and Job pods are only reported (deleting them loses work); so are `invalid-role` and `volume-conflict` pods
 * (the webhook would not mutate the new pod either) and `role-differs` pods unless `healRoleChanges`. Right before
 * an eviction a fresh GET must still show the same pod with the same problem, not already being deleted.
 *
 * Events are core/v1 Events on the pod (`involvedObject`), which is what `kubectl describe pod` lists
 * (k8s.io/kubectl pkg/describe/describe.go `searchEvents`: core/v1 events by involvedObject field selector).
 * @module
 */
import type { ReviewSettings } from '../../function/review-pod.ts'
import type { KubeClient } from '../shared/kube.ts'
import { getObject, statusMessage } from '../shared/kube.ts'
import {
  type Classification,
  classifyPod,
  type Finding,
  type OwnerRef,
  type Problem,
  type ServiceAccountCache,
} from '../shared/pod-scan.ts'

export type Action = 'evicted' | 'blocked-by-pdb' | 'reported' | 'skipped' | 'failed'

export interface HealOutcome {
  readonly action: Action
  readonly reason: string
}

export interface HealOptions {
  readonly client: KubeClient
  readonly maxEvictions: number
  readonly healRoleChanges: boolean
  readonly settings: ReviewSettings
  readonly serviceAccounts: ServiceAccountCache
}

/** Kinds whose controller recreates an evicted pod without losing work. */
const RECREATED_BY = new Set(['ReplicaSet', 'StatefulSet', 'DaemonSet'])

const NOT_HEALED: Partial<Record<Problem, string>> = {
  'invalid-role': "the webhook would not mutate a new pod either: fix the ServiceAccount's role",
  'volume-conflict': "the webhook would not mutate a new pod either: rename the pod's volume",
}

function ownerKey(finding: Finding, owner: OwnerRef | null): string {
  return owner === null
    ? `pod/${finding.namespace}/${finding.name}`
    : `${owner.kind}/${finding.namespace}/${owner.name}`
}

/** Why the pod is only reported, or undefined when it may be evicted. */
function reportOnly(finding: Finding, healRoleChanges: boolean): string | undefined {
  const reason = NOT_HEALED[finding.problem]
  if (reason !== undefined) return reason
  if (finding.problem === 'role-differs' && !healRoleChanges) {
    return 'informational; --heal-role-changes evicts it'
  }
  const controller = finding.controller
  if (controller === null)
    return 'a bare pod: no controller would recreate it (delete and recreate it yourself)'
  if (controller.kind === 'Job')
    return 'a Job pod: evicting it could lose its work (it gets credentials on its next run)'
  if (!RECREATED_BY.has(controller.kind)) return `owned by a ${controller.kind}: not evicted`
  return undefined
}

/** The fresh GET before an eviction: undefined when the pod still has the problem, else why to skip it. */
async function recheck(finding: Finding, options: HealOptions): Promise<HealOutcome | undefined> {
  const path = `/api/v1/namespaces/${encodeURIComponent(finding.namespace)}/pods/${encodeURIComponent(finding.name)}`
  const got = await getObject(options, path)
  if ('missing' in got) return { action: 'skipped', reason: 'the pod is gone' }
  if ('error' in got) return { action: 'failed', reason: `GET pod: ${got.error}` }
  const pod = got.found as { metadata?: { uid?: string; deletionTimestamp?: string } }
  if (pod.metadata?.uid !== finding.uid)
    return { action: 'skipped', reason: 'the pod was recreated meanwhile' }
  // Already going away (a rollout, a drain): its replacement goes through the webhook, and the owner's one
  // eviction of this run is left for a pod that stays.
  if (pod.metadata.deletionTimestamp !== undefined)
    return { action: 'skipped', reason: 'the pod is already being deleted' }
  const now: Classification = await classifyPod(
    pod,
    finding.namespace,
    options.serviceAccounts,
    options.settings,
  )
  if (now.kind !== 'finding' || now.problem !== finding.problem) {
    return { action: 'skipped', reason: 'a fresh GET shows it no longer needs healing' }
  }
  return undefined
}

async function evict(finding: Finding, client: KubeClient): Promise<HealOutcome> {
  const path = `/api/v1/namespaces/${encodeURIComponent(finding.namespace)}/pods/${encodeURIComponent(finding.name)}/eviction`
  const body = {
    apiVersion: 'policy/v1',
    kind: 'Eviction',
    metadata: { name: finding.name, namespace: finding.namespace },
  }
  let response: Awaited<ReturnType<KubeClient['request']>>
  try {
    response = await client.request('POST', path, body)
  } catch (error) {
    return {
      action: 'failed',
      reason: `eviction: ${error instanceof Error ? error.message : error}`,
    }
  }
  if (response.status === 201 || response.status === 200) {
    return { action: 'evicted', reason: 'its controller recreates it through the webhook' }
  }
  if (response.status === 429) {
    const causes =
      (response.body as { details?: { causes?: { message?: string }[] } })?.details?.causes ?? []
    const cause = causes
      .map((c) => c.message)
      .filter(Boolean)
      .join('; ')
    return {
      action: 'blocked-by-pdb',
      reason: `${statusMessage(response)}${cause ? ` (${cause})` : ''}; retried next run`,
    }
  }
  if (response.status === 404) return { action: 'skipped', reason: 'the pod is gone' }
  return { action: 'failed', reason: `eviction: ${statusMessage(response)}` }
}

/**
 * Decides and carries out the heal action of each finding, in order. `owners` holds the resolved owner of each
 * finding (same index).
 */
export async function heal(
  findings: readonly Finding[],
  owners: readonly (OwnerRef | null)[],
  options: HealOptions,
): Promise<HealOutcome[]> {
  const outcomes: HealOutcome[] = []
  const tried = new Set<string>()
  let evicted = 0
  for (const [index, finding] of findings.entries()) {
    outcomes.push(await healOne(finding, owners[index] ?? null))
  }
  return outcomes

  async function healOne(finding: Finding, owner: OwnerRef | null): Promise<HealOutcome> {
    const reported = reportOnly(finding, options.healRoleChanges)
    if (reported !== undefined) return { action: 'reported', reason: reported }
    const key = ownerKey(finding, owner)
    if (tried.has(key))
      return { action: 'skipped', reason: 'one eviction per owner per run: next run' }
    if (evicted >= options.maxEvictions) {
      return {
        action: 'skipped',
        reason: `--max-evictions ${options.maxEvictions} reached: next run`,
      }
    }
    const changed = await recheck(finding, options)
    if (changed !== undefined) return changed
    tried.add(key)
    const outcome = await evict(finding, options.client)
    if (outcome.action === 'evicted') evicted += 1
    return outcome
  }
}

const EVENT_REASON = 'IRSACredentialsMissing'
const ROLE_EVENT_REASON = 'IRSARoleDiffers'
const COMPONENT = 'irsa-webhook-audit'

function eventMessage(finding: Finding): string {
  const sa = `ServiceAccount ${finding.namespace}/${finding.serviceAccount}`
  switch (finding.problem) {
    case 'missing':
      return `${sa} has a Vultr role but this pod was started without its credentials (the webhook did not run when it was created); missing: ${finding.detail}. Recreate the pod (irsa-webhook audit --heal evicts pods of controllers).`
    case 'role-differs':
      return `${sa}: ${finding.detail}; the pod keeps the role it started with.`
    default:
      return `${sa}: the pod has no Vultr credentials: ${finding.detail}`
  }
}

/** A name stable per pod and problem, so a rerun finds it taken (409) instead of piling up Events. */
function eventName(finding: Finding): string {
  const suffix = `.irsa-${finding.problem}-${finding.uid.slice(0, 8) || 'pod'}`
  return `${finding.name.slice(0, 253 - suffix.length)}${suffix}`
}

/** Records a Warning Event on the pod; resolves `recorded`, `exists` (a previous run's) or `failed: …`. */
export async function recordEvent(
  client: KubeClient,
  finding: Finding,
  now: Date,
): Promise<string> {
  const timestamp = now.toISOString().replace(/\.\d+Z$/, 'Z')
  const event = {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: eventName(finding), namespace: finding.namespace },
    involvedObject: {
      apiVersion: 'v1',
      kind: 'Pod',
      namespace: finding.namespace,
      name: finding.name,
      uid: finding.uid,
    },
    reason: finding.problem === 'role-differs' ? ROLE_EVENT_REASON : EVENT_REASON,
    message: eventMessage(finding).slice(0, 1024),
    type: 'Warning',
    source: { component: COMPONENT },
    reportingComponent: COMPONENT,
    reportingInstance: COMPONENT,
    firstTimestamp: timestamp,
    lastTimestamp: timestamp,
    count: 1,
  }
  const path = `/api/v1/namespaces/${encodeURIComponent(finding.namespace)}/events`
  try {
    const response = await client.request('POST', path, event)
    if (response.status === 201 || response.status === 200) return 'recorded'
    if (response.status === 409) return 'exists'
    return `failed: ${statusMessage(response)}`
  } catch (error) {
    return `failed: ${error instanceof Error ? error.message : String(error)}`
  }
}
