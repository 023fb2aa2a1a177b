/**
 * Policy mode's manifests (issue 16): deploy/policy/policy.yaml is what scripts/policy.ts generates from the
 * webhook's constants and messages, the kustomize base renders it with the version label, and the opt-in component
 * narrows all three policies to labelled pods. Behaviour (pod for pod against the webhook) is proven on a real API
 * server in test/integration/policy-differential.test.ts.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { LABELS } from '../../function/names.ts'
import {
  POLICY_FILE,
  POLICY_NAMES,
  policyObjects,
  renderPolicyYaml,
  settingsFor,
} from '../../scripts/policy.ts'
import {
  type Doc,
  get,
  list,
  noKubectl,
  one,
  parse,
  render,
  renderWith,
  webhookOf,
} from '../support/manifests.ts'
import { ROOT } from '../support/process.ts'

const POLICY_KINDS = ['MutatingAdmissionPolicy', 'ValidatingAdmissionPolicy']

describe('policy mode manifests (scripts/policy.ts)', () => {
  test('the committed policy.yaml is the generator output (npm run policy:generate)', () => {
    assert.equal(readFileSync(join(ROOT, POLICY_FILE), 'utf8'), renderPolicyYaml())
  })

  test('--check exits 0 on the committed file', () => {
    const run = spawnSync(process.execPath, ['scripts/policy.ts', '--check'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    assert.equal(run.status, 0, run.stderr)
  })

  test('the objects: a mutating policy and a Warn and a Deny validating policy, each with its binding', () => {
    const docs = parse(readFileSync(join(ROOT, POLICY_FILE), 'utf8'))
    const mutating = one(docs, 'MutatingAdmissionPolicy', POLICY_NAMES.mutating)
    assert.equal(get(mutating, 'spec.reinvocationPolicy'), 'IfNeeded')
    assert.equal(get(mutating, 'spec.failurePolicy'), 'Fail')
    assert.deepEqual(get(mutating, 'spec.paramKind'), { apiVersion: 'v1', kind: 'ServiceAccount' })
    const mutatingBinding = one(docs, 'MutatingAdmissionPolicyBinding', POLICY_NAMES.mutating)
    assert.deepEqual(get(mutatingBinding, 'spec.paramRef'), {
      selector: {},
      parameterNotFoundAction: 'Allow',
    })
    assert.equal(
      get(one(docs, 'ValidatingAdmissionPolicy', POLICY_NAMES.warnings), 'spec.failurePolicy'),
      'Ignore',
    )
    assert.deepEqual(
      get(
        one(docs, 'ValidatingAdmissionPolicyBinding', POLICY_NAMES.warnings),
        'spec.validationActions',
      ),
      ['Warn'],
    )
    assert.deepEqual(
      get(
        one(docs, 'ValidatingAdmissionPolicyBinding', POLICY_NAMES.deny),
        'spec.validationActions',
      ),
      ['Deny'],
    )
    // The first matchCondition is the pod's own ServiceAccount: the cheap test that drops every other one.
    for (const kind of POLICY_KINDS)
      for (const policy of docs.filter((doc) => doc['kind'] === kind))
        assert.match(
          String(get(list(policy, 'spec.matchConditions')[0], 'expression')),
          /object\.spec\.serviceAccountName == params\.metadata\.name/,
        )
  })

  test('INVALID_ROLE_POLICY=warn: no Deny policy, the invalid role is a warning instead', () => {
    const objects = policyObjects({ settings: settingsFor({ INVALID_ROLE_POLICY: 'warn' }) })
    assert.equal(objects.filter((doc) => get(doc, 'metadata.name') === POLICY_NAMES.deny).length, 0)
    const warnings = one(objects, 'ValidatingAdmissionPolicy', POLICY_NAMES.warnings)
    assert.match(
      JSON.stringify(get(warnings, 'spec.variables')),
      /is not a role UUID or arn: value/,
    )
  })

  test('the webhook settings are baked in (TOKEN_AUDIENCE, DEFAULT_REGION)', () => {
    const text = JSON.stringify(
      policyObjects({
        settings: settingsFor({ TOKEN_AUDIENCE: 'sts.example', DEFAULT_REGION: 'ewr' }),
      }),
    )
    assert.match(text, /: \\"sts\.example\\"/)
    assert.match(text, /: \\"ewr\\"/)
  })
})

describe('policy mode kustomize base (kubectl kustomize, offline)', { skip: noKubectl }, () => {
  test('deploy/policy renders the generated objects with the version label, and no workload', () => {
    const rendered = render('deploy/policy')
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string
    }
    const generated = policyObjects()
    assert.equal(rendered.length, generated.length)
    for (const doc of rendered) {
      const labels = get(doc, 'metadata.labels') as Record<string, string>
      assert.equal(labels['app.kubernetes.io/version'], version)
      const { 'app.kubernetes.io/version': _, ...rest } = labels
      const same = generated.find(
        (g) => g['kind'] === doc['kind'] && get(g, 'metadata.name') === get(doc, 'metadata.name'),
      ) as Doc
      assert.deepEqual({ ...doc, metadata: { ...(doc['metadata'] as Doc), labels: rest } }, same)
    }
  })

  test('the policies serve the pods the webhook serves: the same namespace and object selectors', () => {
    const webhook = webhookOf(render('deploy'))
    for (const doc of render('deploy/policy').filter((d) =>
      POLICY_KINDS.includes(String(d['kind'])),
    )) {
      assert.deepEqual(
        get(doc, 'spec.matchConstraints.namespaceSelector'),
        webhook['namespaceSelector'],
      )
      assert.deepEqual(get(doc, 'spec.matchConstraints.objectSelector'), webhook['objectSelector'])
    }
  })

  test('the opt-in-label component narrows every policy to labelled pods, as it does the webhook', () => {
    const docs = renderWith(
      'resources: [deploy/policy]\ncomponents: [deploy/components/opt-in-label]\n',
    )
    const optIn = { key: LABELS.optIn, operator: 'In', values: ['true'] }
    const webhook = webhookOf(
      renderWith('resources: [deploy]\ncomponents: [deploy/components/opt-in-label]\n'),
    )
    const policies = docs.filter((d) => POLICY_KINDS.includes(String(d['kind'])))
    assert.equal(policies.length, 3)
    for (const doc of policies) {
      assert.deepEqual(
        list(doc, 'spec.matchConstraints.objectSelector.matchExpressions').at(-1),
        optIn,
      )
      assert.deepEqual(get(doc, 'spec.matchConstraints.objectSelector'), webhook['objectSelector'])
    }
  })

  test('the labelled-service-accounts component makes every binding select only labelled ServiceAccounts', () => {
    const docs = renderWith(
      'resources: [deploy/policy]\ncomponents: [deploy/components/policy-labelled-service-accounts]\n',
    )
    const bindings = docs.filter((d) => String(d['kind']).endsWith('AdmissionPolicyBinding'))
    assert.equal(bindings.length, 3)
    for (const binding of bindings)
      assert.deepEqual(get(binding, 'spec.paramRef'), {
        selector: { matchLabels: { [LABELS.optIn]: 'true' } },
        parameterNotFoundAction: 'Allow',
      })
  })
})
