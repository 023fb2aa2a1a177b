/**
 * Invariants every mutation must keep, whatever the input: no duplicate env names, volume names or mount paths,
 * and every value the user wrote still there, unchanged and in order.
 * @module
 */
import assert from 'node:assert/strict'

interface Named {
  name: string
  mountPath?: string
}
interface PodLike {
  spec: {
    containers: { name: string; env?: Named[]; volumeMounts?: Named[] }[]
    initContainers?: { name: string; env?: Named[]; volumeMounts?: Named[] }[]
    volumes?: Named[]
  }
}

function assertUnique(values: readonly string[], what: string): void {
  const seen = new Set<string>()
  for (const value of values) {
    assert.ok(!seen.has(value), `duplicate ${what}: ${value}`)
    seen.add(value)
  }
}

function allContainers(pod: PodLike) {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers]
}

/** No duplicate env names per container, volume names, or mount paths per container. */
export function assertNoDuplicates(pod: PodLike): void {
  assertUnique(
    (pod.spec.volumes ?? []).map((volume) => volume.name),
    'volume name',
  )
  for (const container of allContainers(pod)) {
    assertUnique(
      (container.env ?? []).map((entry) => entry.name),
      `env name in ${container.name}`,
    )
    assertUnique(
      (container.volumeMounts ?? []).map((mount) => mount.mountPath ?? ''),
      `mountPath in ${container.name}`,
    )
  }
}

/** Everything in `before` is still in `after`, unchanged and at the same index (the webhook only appends). */
export function assertUserValuesKept(before: PodLike, after: PodLike): void {
  const keep = (
    a: readonly unknown[] | undefined,
    b: readonly unknown[] | undefined,
    what: string,
  ) => {
    assert.deepEqual((b ?? []).slice(0, (a ?? []).length), a ?? [], `${what} changed`)
  }
  keep(before.spec.volumes, after.spec.volumes, 'volumes')
  const afterContainers = allContainers(after)
  allContainers(before).forEach((container, index) => {
    const changed = afterContainers[index]
    assert.ok(changed !== undefined, `container ${container.name} disappeared`)
    keep(container.env, changed.env, `env of ${container.name}`)
    keep(container.volumeMounts, changed.volumeMounts, `volumeMounts of ${container.name}`)
    const { env: _e, volumeMounts: _m, ...rest } = container
    const { env: _e2, volumeMounts: _m2, ...restAfter } = changed
    assert.deepEqual(restAfter, rest, `other fields of ${container.name} changed`)
  })
}
