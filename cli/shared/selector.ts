/**
 * Kubernetes label selector matching (metav1.LabelSelector semantics). Pure.
 * @module
 */
import type { LabelSelector } from './webhook-configuration.ts'

type Labels = Readonly<Record<string, string>>
type Requirement = NonNullable<LabelSelector['matchExpressions']>[number]

function requirementMatches(requirement: Requirement, labels: Labels): boolean {
  const has = Object.hasOwn(labels, requirement.key)
  const value = labels[requirement.key]
  const values = requirement.values ?? []
  switch (requirement.operator) {
    case 'In':
      return has && value !== undefined && values.includes(value)
    case 'NotIn':
      return !has || value === undefined || !values.includes(value)
    case 'Exists':
      return has
    case 'DoesNotExist':
      return !has
    default:
      return false
  }
}

/** True when `labels` are selected. An absent or empty selector selects everything. */
export function selects(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (selector === undefined) return true
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(
    ([key, value]) => labels[key] === value,
  )
  return (
    byLabel && (selector.matchExpressions ?? []).every((req) => requirementMatches(req, labels))
  )
}

/** True when a namespaceSelector selects the namespace `name`: its labels, and its name as kubernetes.io/metadata.name. */
export function selectsNamespace(
  selector: LabelSelector | undefined,
  name: string,
  labels: Labels = {},
): boolean {
  if (selector === undefined) return true
  return selects(selector, { ...labels, 'kubernetes.io/metadata.name': name })
}
