// Doctor's policy-mode checks (cli/doctor/policy.ts) against an in-memory API serving the shipped policy objects.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { checkPolicyApi, checkPolicyObjects } from '../../../cli/doctor/policy.ts'
import type { KubeClient } from '../../../cli/shared/kube.ts'
import { parseYamlDocuments } from '../../../function/yaml.ts'
import { ROOT } from '../../support/process.ts'

type Json = Record<string, unknown>
const GROUP = '/apis/admissionregistration.k8s.io/v1'
const shipped = parseYamlDocuments(
  readFileSync(join(ROOT, 'deploy/policy/policy.yaml'), 'utf8'),
) as Json[]

/** An API serving `objects` by their v1 admissionregistration path, and the group's discovery document. */
function client(objects: readonly Json[], served = true): KubeClient {
  const byPath = new Map(
    objects.map((o) => {
      const kind = String(o['kind']).toLowerCase()
      const resource = kind.endsWith('binding') ? `${kind}s` : kind.replace(/y$/, 'ies')
      return [`${GROUP}/${resource}/${(o['metadata'] as Json)['name']}`, o]
    }),
  )
  const reply = (status: number, body: unknown) => ({ status, body, text: '', headers: {} })
  const get = async (path: string) => {
    if (path === GROUP)
      return served
        ? reply(200, {
            resources: [
              { name: 'mutatingadmissionpolicies' },
              { name: 'validatingadmissionpolicies' },
            ],
          })
        : reply(404, {})
    const found = byPath.get(path)
    return found === undefined ? reply(404, {}) : reply(200, found)
  }
  return { server: 'memory', get, request: async (_method, path) => get(path) }
}

describe('doctor, policy mode', () => {
  test('the shipped objects pass', async () => {
    const context = { client: client(shipped), policyName: 'irsa-webhook' }
    assert.equal((await checkPolicyApi(context)).status, 'pass')
    const results = await checkPolicyObjects(context)
    assert.deepEqual(
      results.map((r) => [r.name, r.status]),
      [
        ['MutatingAdmissionPolicy irsa-webhook', 'pass'],
        ['ValidatingAdmissionPolicy irsa-webhook-warnings', 'pass'],
        ['ValidatingAdmissionPolicy irsa-webhook-deny', 'pass'],
      ],
    )
  })

  test('an API server before 1.36 fails the API check with the way out', async () => {
    const result = await checkPolicyApi({ client: client([], false), policyName: 'irsa-webhook' })
    assert.equal(result.status, 'fail')
    assert.match(result.detail, /Kubernetes 1\.36 or later/)
    assert.match(result.fix ?? '', /classic or Knative/)
  })

  test('a missing binding fails; a missing Deny policy warns (INVALID_ROLE_POLICY=warn)', async () => {
    const objects = shipped.filter(
      (o) =>
        !(o['kind'] === 'MutatingAdmissionPolicyBinding') &&
        (o['metadata'] as Json)['name'] !== 'irsa-webhook-deny',
    )
    const [mutating, , deny] = await checkPolicyObjects({
      client: client(objects),
      policyName: 'irsa-webhook',
    })
    assert.equal(mutating?.status, 'fail')
    assert.match(mutating?.detail ?? '', /binding irsa-webhook is not found/)
    assert.equal(deny?.status, 'warn')
  })

  test('a binding that does not select ServiceAccounts of the pod namespace fails', async () => {
    const objects = structuredClone(shipped)
    const binding = objects.find((o) => o['kind'] === 'MutatingAdmissionPolicyBinding') as Json
    ;(binding['spec'] as Json)['paramRef'] = { name: 'default', namespace: 'default' }
    const [mutating] = await checkPolicyObjects({
      client: client(objects),
      policyName: 'irsa-webhook',
    })
    assert.equal(mutating?.status, 'fail')
    assert.match(mutating?.detail ?? '', /paramRef must select/)
  })
})
