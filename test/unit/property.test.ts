/**
 * Property-based tests (fast-check, fixed seed): for generated pods and ServiceAccounts, through the real app in
 * process, the patch always applies (RFC 6902, validated), a second review of the result gives no patch, every
 * user value is kept unchanged and in order, nothing is duplicated, and the response envelope is always valid.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { ENV, TOKEN_VOLUME } from '../../function/names.ts'
import { podReview } from '../support/fixtures.ts'
import { assertNoDuplicates, assertUserValuesKept } from '../support/invariants.ts'
import { admit } from '../support/webhook.ts'

/** As it arrives on the wire: plain JSON objects (fast-check builds some with a null prototype). */
const wire = <T>(value: T): T => JSON.parse(JSON.stringify(value))

const SETTINGS = { seed: 20_261_128, numRuns: 250 } as const

const text = (chars: string, maxLength = 10) =>
  fc.string({ unit: fc.constantFrom(...chars.split('')), minLength: 1, maxLength })

const name = text('ab/~-0.', 8)
const unknownFields = fc.dictionary(text('xyz'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 })

const envName = fc.oneof(fc.constantFrom(...Object.values(ENV)), text('ABC_/~', 8))
const envEntry = fc.record({ name: envName, value: fc.string({ maxLength: 12 }) })
const mountPath = fc.oneof(
  fc.constantFrom(TOKEN_VOLUME.mountPath, `${TOKEN_VOLUME.mountPath}/`, '/data', '/x/y'),
  text('/abc~', 10).map((path) => `/${path}`),
)
const mount = fc.record(
  {
    name: fc.oneof(fc.constantFrom(TOKEN_VOLUME.name, 'data'), name),
    mountPath,
    readOnly: fc.boolean(),
  },
  { requiredKeys: ['name', 'mountPath'] },
)

const container = fc
  .record(
    {
      name,
      image: fc.constant('registry.example.com/app:1'),
      env: fc.uniqueArray(envEntry, { selector: (entry) => entry.name, maxLength: 5 }),
      volumeMounts: fc.uniqueArray(mount, { selector: (m) => m.mountPath, maxLength: 3 }),
    },
    { requiredKeys: ['name', 'image'] },
  )
  .chain((c) => unknownFields.map((extra) => ({ ...extra, ...c })))

const ourVolume = (audience: string) => ({
  name: TOKEN_VOLUME.name,
  projected: {
    sources: [{ serviceAccountToken: { audience, expirationSeconds: 86_400, path: 'token' } }],
  },
})
const volume = fc.oneof(
  fc.constantFrom(ourVolume('vultr'), ourVolume('other'), {
    name: TOKEN_VOLUME.name,
    emptyDir: {},
  }),
  fc.record({ name, emptyDir: fc.constant({}) }),
)

const pod = fc
  .record(
    {
      containers: fc.array(container, { minLength: 1, maxLength: 3 }),
      initContainers: fc.array(container, { maxLength: 2 }),
      volumes: fc.uniqueArray(volume, { selector: (v) => v.name, maxLength: 3 }),
      extra: unknownFields,
    },
    { requiredKeys: ['containers', 'extra'] },
  )
  .map(({ extra, ...spec }) =>
    wire({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'ns' },
      spec: { ...extra, serviceAccountName: 'sa', ...spec },
    }),
  )

const role = fc.oneof(
  fc.uuid().map((uuid) => uuid.toLowerCase()),
  fc.constant('arn:aws:iam::0123456789:role/app-role'),
  fc.constantFrom('', ' 775a6be6-45cd-4f19-94f5-6e4f96f093ec', 'not-a-role', 'arn:x', 'a\nb'),
)
const serviceAccount = fc
  .record(
    {
      'api.vultr.com/role': role,
      'api.vultr.com/audience': fc.constantFrom('vultr', 'other', 'bad audience'),
      'api.vultr.com/region': fc.constantFrom('ewr', 'BAD'),
      'api.vultr.com/token-expiration': fc.constantFrom('3600', '10', 'x'),
    },
    { requiredKeys: [] },
  )
  .map((annotations) =>
    wire({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'sa', namespace: 'ns', annotations },
    }),
  )
const config = fc.record({ INVALID_ROLE_POLICY: fc.constantFrom('deny', 'warn') })

// biome-ignore lint/suspicious/noExplicitAny: wire JSON
function assertEnvelope(body: any, uid: string): void {
  assert.equal(body.apiVersion, 'admission.k8s.io/v1')
  assert.equal(body.kind, 'AdmissionReview')
  const response = body.response
  assert.equal(response.uid, uid)
  assert.equal(typeof response.allowed, 'boolean')
  assert.equal('patch' in response, 'patchType' in response, 'patch and patchType go together')
  if ('patch' in response) {
    assert.equal(response.patchType, 'JSONPatch')
    const bytes = Buffer.from(response.patch, 'base64')
    assert.equal(bytes.toString('base64'), response.patch, 'patch is canonical base64')
    assert.ok(Array.isArray(JSON.parse(bytes.toString('utf8'))))
  }
  if (!response.allowed) {
    assert.equal(typeof response.status.message, 'string')
    assert.ok(!('patch' in response), 'a denial carries no patch')
  }
}

describe('generated pods and ServiceAccounts', () => {
  it('always get a valid envelope, an applicable patch, kept user values, and an empty second review', async () => {
    const seen = { patched: 0, unpatched: 0, denied: 0 }
    await fc.assert(
      fc.asyncProperty(pod, serviceAccount, config, async (generated, sa, env) => {
        const review = podReview(generated, 'prop-uid')
        const first = await admit(review, [sa], env)
        assert.equal(first.status, 200)
        assertEnvelope(first.body, 'prop-uid')
        // admit() applied the patch with fast-json-patch's validation: it threw if an op could not apply.
        const after = first.mutatedPod
        if (!first.body.response.allowed) seen.denied += 1
        else if (first.patch.length > 0) seen.patched += 1
        else seen.unpatched += 1
        assertNoDuplicates(after)
        assertUserValuesKept(generated, after)
        const { volumes: _v, containers: _c, initContainers: _i, ...restBefore } = generated.spec
        const { volumes: _v2, containers: _c2, initContainers: _i2, ...restAfter } = after.spec
        assert.deepEqual(restAfter, restBefore, 'unknown pod fields kept')
        const second = await admit(podReview(after, 'prop-uid-2'), [sa], env)
        assertEnvelope(second.body, 'prop-uid-2')
        assert.deepEqual(second.patch, [], 'the second review gives no patch')
        assert.equal(second.body.response.allowed, first.body.response.allowed)
      }),
      SETTINGS,
    )
    // The generators reach every kind of answer, so the properties above were not checked on no-ops only.
    for (const [kind, count] of Object.entries(seen)) assert.ok(count >= 10, `${kind}: ${count}`)
  })

  it('mutates every container of an opted-in pod unless our volume name is taken by a foreign volume', async () => {
    await fc.assert(
      fc.asyncProperty(pod, fc.uuid(), async (generated, uuid) => {
        const sa = {
          kind: 'ServiceAccount',
          metadata: { name: 'sa', namespace: 'ns', annotations: { 'api.vultr.com/role': uuid } },
        }
        const { mutatedPod, body, patch } = await admit(podReview(generated), [sa])
        const foreign = (generated.spec.volumes ?? []).some(
          (v) =>
            v.name === TOKEN_VOLUME.name &&
            JSON.stringify(v) !== JSON.stringify(ourVolume('vultr')),
        )
        assert.equal(body.response.allowed, true)
        if (foreign) {
          assert.deepEqual(patch, [], 'a foreign volume of our name blocks the mutation')
          return
        }
        for (const c of [
          ...(mutatedPod.spec.initContainers ?? []),
          ...mutatedPod.spec.containers,
        ]) {
          const names = new Set((c.env ?? []).map((e: { name: string }) => e.name))
          assert.ok(names.has(ENV.roleArn), `${c.name} has ${ENV.roleArn}`)
          assert.ok(names.has(ENV.tokenFile), `${c.name} has ${ENV.tokenFile}`)
        }
      }),
      SETTINGS,
    )
  })
})
