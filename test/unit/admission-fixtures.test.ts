/**
 * Real AdmissionReview requests captured from kube-apiserver v1.26.0 and v1.19.0 (test/fixtures/admission, see its
 * README), answered with the ServiceAccounts captured beside them. Each answer must equal its golden file in
 * test/golden/admission/ exactly (v1.19 and v1.26 share one golden: the requests differ only in fields the webhook
 * does not read). `UPDATE_GOLDEN=1` rewrites the goldens for review as a diff.
 */
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { listFixtures, loadJson, podReview } from '../support/fixtures.ts'
import { assertNoDuplicates, assertUserValuesKept } from '../support/invariants.ts'
import { admit } from '../support/webhook.ts'

const UPDATE = process.env['UPDATE_GOLDEN'] === '1'
const GOLDEN = new URL('../golden/admission/', import.meta.url)
const serviceAccounts = listFixtures('admission/', /^serviceaccount-.*\.json$/).map((file) =>
  loadJson(`admission/${file}`),
)

describe('real kube-apiserver AdmissionReviews', () => {
  it('uses the three captured ServiceAccounts', () => {
    assert.equal(serviceAccounts.length, 3)
  })
  for (const version of ['', 'v1.19/']) {
    for (const file of listFixtures(`admission/${version}`, /^pod-.*\.json$/)) {
      it(`${version || 'v1.26/'}${file} gets exactly the golden answer`, async () => {
        const review = loadJson(`admission/${version}${file}`)
        // The v1.19 run used another namespace; its ServiceAccounts were made by the same manifests, so the captured
        // ones are placed in the request's namespace.
        const inNamespace = serviceAccounts.map((sa) => ({
          ...sa,
          metadata: { ...sa.metadata, namespace: review.request.namespace },
        }))
        const result = await admit(review, inNamespace)
        assert.equal(result.status, 200)
        assert.equal(result.body.apiVersion, review.apiVersion)
        assert.equal(result.body.kind, review.kind)
        const { uid, patch, patchType, ...answer } = result.body.response
        assert.equal(uid, review.request.uid)
        assert.equal(patchType, patch === undefined ? undefined : 'JSONPatch')
        const actual = { ...answer, patch: result.patch }
        const golden = new URL(file, GOLDEN)
        if (UPDATE && version === '') {
          writeFileSync(golden, `${JSON.stringify(actual, null, 2)}\n`)
          return
        }
        assert.deepEqual(actual, JSON.parse(readFileSync(golden, 'utf8')))

        assertNoDuplicates(result.mutatedPod)
        assertUserValuesKept(review.request.object, result.mutatedPod)
        const again = await admit(
          podReview({
            ...result.mutatedPod,
            metadata: { ...result.mutatedPod.metadata, namespace: review.request.namespace },
          }),
          inNamespace,
        )
        assert.equal(again.patch.length, 0, 'reinvocation on the mutated pod must give no patch')
      })
    }
  }
})
