/**
 * Loads test fixtures as fresh deep copies, and builds AdmissionReviews around pods.
 * @module
 */
import { readdirSync, readFileSync } from 'node:fs'

export const FIXTURES = new URL('../fixtures/', import.meta.url)

/** Parses a JSON fixture relative to test/fixtures/ (a fresh object on every call). */
// biome-ignore lint/suspicious/noExplicitAny: fixtures are wire JSON
export function loadJson(relative: string): any {
  return JSON.parse(readFileSync(new URL(relative, FIXTURES), 'utf8'))
}

/** File names in a fixture folder matching `pattern`, sorted. */
export function listFixtures(folder: string, pattern: RegExp): string[] {
  return readdirSync(new URL(folder, FIXTURES))
    .filter((name) => pattern.test(name))
    .sort()
}

/** An AdmissionReview v1 for a Pod CREATE, shaped like kube-apiserver's. */
export function podReview(
  pod: { metadata?: { name?: string; namespace?: string } },
  uid = 'test-uid',
) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      ...(pod.metadata?.name === undefined ? {} : { name: pod.metadata.name }),
      namespace: pod.metadata?.namespace ?? 'default',
      operation: 'CREATE',
      userInfo: { username: 'tester' },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  }
}
