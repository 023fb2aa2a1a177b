/** readPod: in-place type checks of the fields the webhook reads, with messages naming the path. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { readPod } from '../../function/pod.ts'
import { loadJson } from '../support/fixtures.ts'

const pod = () => ({
  metadata: { name: 'p', annotations: { a: 'b' } },
  spec: {
    serviceAccountName: 'sa',
    containers: [
      {
        name: 'app',
        env: [{ name: 'A', value: '1' }],
        volumeMounts: [{ name: 'v', mountPath: '/v' }],
      },
    ],
    initContainers: null,
    volumes: [
      {
        name: 'v',
        projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'vultr' } }] },
      },
    ],
  },
})

describe('readPod', () => {
  it('returns the very object it was given (no copy), typed', () => {
    const review = loadJson('admission/pod-irsa-multi-container.json')
    const result = readPod(review.request.object)
    assert.ok(result.ok)
    assert.equal(result.value, review.request.object)
  })

  it('accepts every real captured pod', () => {
    for (const name of [
      'pod-irsa-single-container.json',
      'pod-irsa-multi-container.json',
      'pod-generate-name.json',
    ]) {
      assert.equal(readPod(loadJson(`admission/${name}`).request.object).ok, true, name)
    }
  })

  const bad: [string, (p: ReturnType<typeof pod>) => unknown, string][] = [
    ['not an object', () => 'pod', 'request.object: expected object, got string'],
    [
      'no spec',
      (p) => ({ ...p, spec: undefined }),
      'request.object.spec: expected object, got undefined',
    ],
    [
      'containers missing',
      (p) => ({ ...p, spec: { ...p.spec, containers: undefined } }),
      'request.object.spec.containers: expected array, got undefined',
    ],
    [
      'a container name that is a number',
      (p) => ({ ...p, spec: { ...p.spec, containers: [{ name: 1 }] } }),
      'request.object.spec.containers[0].name: expected string, got number',
    ],
    [
      'env that is an object',
      (p) => ({ ...p, spec: { ...p.spec, containers: [{ name: 'a', env: {} }] } }),
      'request.object.spec.containers[0].env: expected array, got object',
    ],
    [
      'an env value that is a number',
      (p) => ({
        ...p,
        spec: { ...p.spec, containers: [{ name: 'a', env: [{ name: 'X', value: 3 }] }] },
      }),
      'request.object.spec.containers[0].env[0].value: expected string, got number',
    ],
    [
      'a mount without mountPath',
      (p) => ({
        ...p,
        spec: { ...p.spec, initContainers: [{ name: 'i', volumeMounts: [{ name: 'v' }] }] },
      }),
      'request.object.spec.initContainers[0].volumeMounts[0].mountPath: expected string, got undefined',
    ],
    [
      'an annotation that is not a string',
      (p) => ({ ...p, metadata: { annotations: { n: 1 } } }),
      'request.object.metadata.annotations.n: expected string, got number',
    ],
    [
      'a label that is not a string',
      (p) => ({ ...p, metadata: { labels: { 'api.vultr.com/irsa': true } } }),
      'request.object.metadata.labels.api.vultr.com/irsa: expected string, got boolean',
    ],
    [
      'a token projection without path',
      (p) => ({
        ...p,
        spec: {
          ...p.spec,
          volumes: [{ name: 'v', projected: { sources: [{ serviceAccountToken: {} }] } }],
        },
      }),
      'request.object.spec.volumes[0].projected.sources[0].serviceAccountToken.path: expected string, got undefined',
    ],
    [
      'a null volume',
      (p) => ({ ...p, spec: { ...p.spec, volumes: [null] } }),
      'request.object.spec.volumes[0]: expected object, got null',
    ],
  ]
  for (const [name, make, message] of bad) {
    it(`rejects ${name}, naming the path`, () => {
      const result = readPod(make(pod()))
      assert.deepEqual(result, { ok: false, error: message })
    })
  }

  it('ignores fields it does not read, whatever their type', () => {
    const p = pod()
    Object.assign(p.spec.containers[0] ?? {}, { resources: 'weird', futureField: [1, 2] })
    assert.equal(readPod({ ...p, status: 42 }).ok, true)
  })
})
