/**
 * Who owns a pod the audit found, for grouping and for the one-eviction-per-owner rule: ReplicaSet → its Deployment,
 * Job → its CronJob (both read from the owner's ownerReferences, one GET per owner, cached), Knative pods → their
 * Service or Revision (pod labels), StatefulSet and DaemonSet as they are. When a ReplicaSet cannot be read (no RBAC
 * for it, or it is gone), the Deployment is named by the controller's naming convention
 * (`<deployment>-<pod-template-hash>`).
 * @module
 */

import type { KubeClient } from '../shared/kube.ts'
import { getObject } from '../shared/kube.ts'
import { controllerOf, type Finding, type OwnerRef } from '../shared/pod-scan.ts'

const KNATIVE = 'serving.knative.dev/v1'

/** The controller of the owner at `path` (null: it has none), or undefined when it could not be read. */
async function parentOf(client: KubeClient, path: string): Promise<OwnerRef | null | undefined> {
  const got = await getObject({ client }, path)
  return 'found' in got ? controllerOf(got.found) : undefined
}

function byConvention(finding: Finding, replicaSet: string): OwnerRef | undefined {
  const hash = finding.labels['pod-template-hash']
  if (hash === undefined || !replicaSet.endsWith(`-${hash}`)) return undefined
  return { kind: 'Deployment', name: replicaSet.slice(0, -hash.length - 1) }
}

/** Resolves owners with one GET per ReplicaSet/Job, however many pods share it. */
export function createOwnerResolver(client: KubeClient) {
  const parents = new Map<string, Promise<OwnerRef | null | undefined>>()
  const cachedParent = (path: string) => {
    let parent = parents.get(path)
    if (parent === undefined) {
      parent = parentOf(client, path)
      parents.set(path, parent)
    }
    return parent
  }
  const viaParent = async (finding: Finding, controller: OwnerRef): Promise<OwnerRef> => {
    const ns = encodeURIComponent(finding.namespace)
    const name = encodeURIComponent(controller.name)
    if (controller.kind === 'ReplicaSet') {
      const parent = await cachedParent(`/apis/apps/v1/namespaces/${ns}/replicasets/${name}`)
      if (parent?.kind === 'Deployment') return parent
      if (parent === undefined) return byConvention(finding, controller.name) ?? controller
      return controller
    }
    if (controller.kind === 'Job') {
      const parent = await cachedParent(`/apis/batch/v1/namespaces/${ns}/jobs/${name}`)
      return parent?.kind === 'CronJob' ? parent : controller
    }
    return controller
  }
  return async function ownerOf(finding: Finding): Promise<OwnerRef | null> {
    const knativeService = finding.labels['serving.knative.dev/service']
    if (knativeService !== undefined)
      return { kind: 'Service', name: knativeService, apiVersion: KNATIVE }
    const revision = finding.labels['serving.knative.dev/revision']
    if (revision !== undefined) return { kind: 'Revision', name: revision, apiVersion: KNATIVE }
    return finding.controller === null ? null : viaParent(finding, finding.controller)
  }
}
