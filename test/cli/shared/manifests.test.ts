// Unit tests for the CLI's shared pure parts: pod templates, the add-only patch applier, label selectors, arguments.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fastJsonPatch from 'fast-json-patch'
import { parseSettings, splitRef, UsageError } from '../../../cli/shared/io.ts'
import { applyAddPatch, podCreateRequest, podOf, rebase } from '../../../cli/shared/manifests.ts'
import { selects } from '../../../cli/shared/selector.ts'
import type { Pod } from '../../../function/kube-objects.ts'
import { planPodMutation } from '../../../function/mutate-pod.ts'
import { createStaticServiceAccountSource } from '../../../function/service-accounts.ts'
import { listFixtures, loadJson } from '../../support/fixtures.ts'

const IDENTITY = {
  roleArn: '775a6be6-45cd-4f19-94f5-6e4f96f093ec',
  audience: 'vultr',
  expirationSeconds: 86400,
  stsEndpoint: 'https://api.vultr.com/v2/assumed-roles/compatibility/aws/sts',
  region: 'ewr',
}

const template = { metadata: { labels: { app: 'a' } }, spec: { containers: [{ name: 'c' }] } }

describe('podOf', () => {
  test('finds the pod template of every workload kind at its path', () => {
    const cases: [string, object, string][] = [
      ['Deployment', { spec: { template } }, '/spec/template'],
      ['StatefulSet', { spec: { template } }, '/spec/template'],
      ['DaemonSet', { spec: { template } }, '/spec/template'],
      ['ReplicaSet', { spec: { template } }, '/spec/template'],
      ['ReplicationController', { spec: { template } }, '/spec/template'],
      ['Job', { spec: { template } }, '/spec/template'],
      [
        'CronJob',
        { spec: { jobTemplate: { spec: { template } } } },
        '/spec/jobTemplate/spec/template',
      ],
      ['PodTemplate', { template }, '/template'],
    ]
    for (const [kind, body, path] of cases) {
      const workload = podOf({ kind, metadata: { name: 'w' }, ...body }, 'team-a')
      assert.equal(workload?.podPath, path, kind)
      assert.deepEqual(workload?.pod, { apiVersion: 'v1', kind: 'Pod', ...template }, kind)
      assert.equal(workload?.namespace, 'team-a', kind)
    }
  })

  test('a bare Pod is its own pod and keeps its namespace; other kinds have none', () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'ns1' },
      spec: template.spec,
    }
    const workload = podOf(pod, 'default')
    assert.equal(workload?.podPath, '')
    assert.equal(workload?.namespace, 'ns1')
    assert.deepEqual(workload?.pod, pod)
    assert.equal(podOf({ kind: 'ConfigMap', metadata: { name: 'c' } }, 'default'), undefined)
    assert.equal(podOf('text', 'default'), undefined)
  })

  test('the request looks like the API server creating the pod in the namespace', () => {
    const workload = podOf(
      { kind: 'Job', metadata: { name: 'j', namespace: 'x' }, spec: { template } },
      'd',
    )
    assert.ok(workload)
    const request = podCreateRequest(workload, 'u1')
    assert.equal(request.operation, 'CREATE')
    assert.equal(request.namespace, 'x')
    assert.deepEqual(request.kind, { group: '', version: 'v1', kind: 'Pod' })
    assert.equal(request.name, undefined)
  })
})

describe('applyAddPatch', () => {
  test('gives the same document as fast-json-patch for the planner patch of every admission fixture', () => {
    const files = listFixtures('admission/', /^pod-.*\.json$/)
    assert.ok(files.length >= 7)
    for (const file of files) {
      const pod = loadJson(`admission/${file}`).request.object as Pod
      const { patch } = planPodMutation(pod, IDENTITY)
      const expected = fastJsonPatch.applyPatch(
        structuredClone(pod),
        structuredClone([...patch]),
        true,
        false,
      )
      assert.deepEqual(applyAddPatch(pod, patch), expected.newDocument, file)
    }
  })

  test('rebased under a template path, it patches the template inside the manifest', () => {
    const manifest = {
      kind: 'Deployment',
      spec: { template: { spec: { containers: [{ name: 'c' }] } } },
    }
    const patch = [
      { op: 'add' as const, path: '/spec/containers/0/env', value: [{ name: 'A', value: '1' }] },
    ]
    const result = applyAddPatch(manifest, rebase(patch, '/spec/template'))
    assert.deepEqual(result.spec.template.spec.containers[0], {
      name: 'c',
      env: [{ name: 'A', value: '1' }],
    })
    assert.deepEqual(
      manifest.spec.template.spec.containers[0],
      { name: 'c' },
      'the input is not changed',
    )
  })

  test('unescapes ~1 and ~0, appends with -, inserts at an index and rejects a missing parent', () => {
    const doc = { metadata: { annotations: {} as Record<string, string> }, list: [1, 3] }
    const result = applyAddPatch(doc, [
      { op: 'add', path: '/metadata/annotations/api.vultr.com~1a~0b', value: 'v' },
      { op: 'add', path: '/list/1', value: 2 },
      { op: 'add', path: '/list/-', value: 4 },
    ])
    assert.deepEqual(result.metadata.annotations, { 'api.vultr.com/a~b': 'v' })
    assert.deepEqual(result.list, [1, 2, 3, 4])
    assert.throws(
      () => applyAddPatch(doc, [{ op: 'add', path: '/nope/x', value: 1 }]),
      /parent does not exist/,
    )
    assert.throws(
      () => applyAddPatch(doc, [{ op: 'add', path: '/list/9', value: 1 }]),
      /bad array index/,
    )
  })
})

describe('selects', () => {
  const labels = { 'kubernetes.io/metadata.name': 'irsa-system', team: 'a' }
  test('follows matchLabels and the four operators; an empty selector selects everything', () => {
    assert.equal(selects(undefined, labels), true)
    assert.equal(selects({}, labels), true)
    assert.equal(selects({ matchLabels: { team: 'a' } }, labels), true)
    assert.equal(selects({ matchLabels: { team: 'b' } }, labels), false)
    const expr = (operator: string, values?: string[]) => ({
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator, ...(values ? { values } : {}) },
      ],
    })
    assert.equal(selects(expr('NotIn', ['kube-system', 'irsa-system']), labels), false)
    assert.equal(selects(expr('NotIn', ['kube-system']), labels), true)
    assert.equal(selects(expr('In', ['irsa-system']), labels), true)
    assert.equal(selects(expr('Exists'), labels), true)
    assert.equal(selects(expr('DoesNotExist'), labels), false)
    assert.equal(selects(expr('Gt', ['1']), labels), false)
  })
})

describe('arguments', () => {
  test('splitRef reads ns/name and name, and rejects the rest', () => {
    assert.deepEqual(splitRef('a/b', 'd'), { namespace: 'a', name: 'b' })
    assert.deepEqual(splitRef('b', 'd'), { namespace: 'd', name: 'b' })
    assert.throws(() => splitRef('a/b/c', 'd'), UsageError)
    assert.throws(() => splitRef('a/', 'd'), UsageError)
  })

  test('parseSettings reads KEY=VALUE (values may hold =) and rejects the rest', () => {
    assert.deepEqual(parseSettings(['A=1', 'B=x=y']), { A: '1', B: 'x=y' })
    assert.throws(() => parseSettings(['novalue']), UsageError)
  })
})

describe('createStaticServiceAccountSource', () => {
  test('finds ServiceAccounts and ignores other kinds of the same name', () => {
    const meta = { name: 'app', namespace: 'ns', annotations: { 'api.vultr.com/role': 'r' } }
    const source = createStaticServiceAccountSource([
      { kind: 'Deployment', metadata: { ...meta, name: 'web' } },
      { kind: 'ServiceAccount', metadata: meta },
    ])
    assert.equal(source.cached?.('ns', 'app')?.kind, 'found')
    assert.equal(source.cached?.('ns', 'web')?.kind, 'not-found')
  })
})
