/**
 * Fixture walk: every file in test/fixtures/cases/ is one whole case — a ServiceAccount, a pod, optional webhook
 * config, and the expected answer (allowed, exact JSON patch, warnings, denial message). For every case the patch
 * is applied with a real RFC 6902 library, the result is reviewed again (no patch: idempotent), and the invariants
 * hold. `UPDATE_GOLDEN=1` rewrites the `expected` sections for review as a diff.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { FIXTURES, listFixtures, loadJson, podReview } from '../support/fixtures.ts'
import { assertNoDuplicates, assertUserValuesKept } from '../support/invariants.ts'
import { admit } from '../support/webhook.ts'

const UPDATE = process.env['UPDATE_GOLDEN'] === '1'

describe('mutation cases (test/fixtures/cases)', () => {
  const files = listFixtures('cases/', /\.json$/)
  it('has the cases the issue asks for', () => {
    assert.ok(files.length >= 30, `only ${files.length} cases`)
  })
  for (const file of files) {
    const testCase = loadJson(`cases/${file}`)
    it(`${file}: ${testCase.description}`, async () => {
      const review = podReview(testCase.pod)
      const result = await admit(review, [testCase.serviceAccount], testCase.env ?? {})
      assert.equal(result.status, 200)
      const response = result.body.response
      assert.equal(result.body.apiVersion, 'admission.k8s.io/v1')
      assert.equal(result.body.kind, 'AdmissionReview')
      assert.equal(response.uid, review.request.uid)
      const actual = {
        allowed: response.allowed,
        patch: result.patch,
        warnings: response.warnings ?? [],
        ...(response.allowed ? {} : { message: response.status.message }),
      }
      if (UPDATE) {
        writeFileSync(
          new URL(`cases/${file}`, FIXTURES),
          `${JSON.stringify({ ...testCase, expected: actual }, null, 2)}\n`,
        )
        return
      }
      assert.deepEqual(actual, testCase.expected)

      assertNoDuplicates(result.mutatedPod)
      assertUserValuesKept(testCase.pod, result.mutatedPod)
      const again = await admit(
        podReview(result.mutatedPod),
        [testCase.serviceAccount],
        testCase.env ?? {},
      )
      assert.equal(again.patch.length, 0, 'a second review of the mutated pod must give no patch')
      assert.equal(again.body.response.allowed, response.allowed)
    })
  }
})
