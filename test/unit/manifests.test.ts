/**
 * Manifests are code. Every YAML under deploy/ and knative/ is parsed, every kustomization is rendered offline
 * (when kubectl is on PATH), and the invariants the operator relies on (test/support/manifests.ts) are checked.
 */

import assert from 'node:assert/strict'
import { join, relative } from 'node:path'
import { describe, test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { SECRET_NAMES } from '../../cli/certs/certs.ts'
import { loadConfig } from '../../function/config.ts'
import { LABELS, ROUTES } from '../../function/names.ts'
import {
  type Container,
  checkAudit,
  checkCerts,
  checkClassic,
  checkKnative,
  classicFiles,
  type Doc,
  get,
  knativeFiles,
  labelsAt,
  list,
  noKubectl,
  one,
  parseFiles,
  rbacOf,
  render,
  renderWith,
  scriptDefault,
  scriptGateway,
  servingSecretOf,
  webhookContainer,
  webhookOf,
  yamlFiles,
} from '../support/manifests.ts'
import { ROOT } from '../support/process.ts'

describe('the YAML files under deploy/ and knative/', () => {
  test('every file parses and every document has an apiVersion and a kind', () => {
    const files = [...yamlFiles('deploy'), ...yamlFiles('knative')]
    assert.ok(files.length >= 15)
    for (const file of files) {
      for (const doc of parseFiles(file)) {
        // A kustomize JSON6902 patch file is a list of operations; everything else is an object.
        const ok = Array.isArray(doc)
          ? doc.every((op: Doc) => op['op'] && op['path'])
          : doc['apiVersion'] && doc['kind']
        assert.ok(ok, relative(ROOT, file))
      }
    }
  })

  test('every kustomize image is pinned by tag or digest, never latest', () => {
    const images = ['deploy/base', 'knative/base'].flatMap((dir) =>
      list(parseFiles(join(dir, 'kustomization.yaml'))[0], 'images'),
    )
    assert.equal(images.length, 2)
    for (const image of images) {
      assert.ok(image['digest'] || image['newTag'], 'a tag or a digest')
      assert.notEqual(image['newTag'], 'latest')
    }
  })

  test('the classic files hold a hardened 2-replica HTTPS Deployment behind a Fail webhook', () => {
    checkClassic(classicFiles())
  })

  test('the Knative files hold a scale-to-zero ksvc reached through the Kourier gateway alias', () => {
    assert.equal(checkKnative(knativeFiles(), 'scale-to-zero'), scriptGateway())
  })

  test('both webhook configurations exclude the same namespaces and pods', () => {
    const [classic, knative] = [webhookOf(classicFiles()), webhookOf(knativeFiles())]
    assert.deepEqual(classic['namespaceSelector'], knative['namespaceSelector'])
    assert.deepEqual(classic['objectSelector'], knative['objectSelector'])
  })
})

describe('kustomize output (kubectl kustomize, offline)', { skip: noKubectl }, () => {
  test('deploy/ renders the classic shape', () => {
    checkClassic(render('deploy'))
  })

  test('knative/ renders the scale-to-zero shape with the gateway in kourier-system', () => {
    assert.equal(checkKnative(render('knative'), 'scale-to-zero'), 'kourier-system')
  })

  test('knative/overlays/operator moves every gateway reference to knative-serving', () => {
    const docs = render('knative/overlays/operator')
    assert.equal(checkKnative(docs, 'scale-to-zero'), 'knative-serving')
    assert.doesNotMatch(JSON.stringify(docs), /kourier-system/)
  })

  test('knative/overlays/production is min-scale 1 with failurePolicy Fail, also on Operator installs', () => {
    checkKnative(render('knative/overlays/production'), 'production')
    const composed =
      'resources: [knative/overlays/operator]\ncomponents: [knative/components/production]\n'
    assert.equal(checkKnative(renderWith(composed), 'production'), 'knative-serving')
  })

  test('both shapes apply the very same RBAC and namespace, and no local config', () => {
    const [classic, knative] = [render('deploy'), render('knative')]
    assert.deepEqual(rbacOf(knative), rbacOf(classic))
    const local = [...classic, ...knative].filter(
      (doc) =>
        ['ConfigMap', 'PodTemplate'].includes(String(doc['kind'])) ||
        labelsAt(doc, 'metadata.annotations')['config.kubernetes.io/local-config'],
    )
    assert.deepEqual(local, [])
  })

  const AUDIT = 'deploy/components/audit-cronjob'
  const LABEL_PROFILE = 'deploy/components/opt-in-label'
  const shapes = {
    deploy: (docs: Doc[], optIn = false) => checkClassic(docs, optIn),
    knative: (docs: Doc[], optIn = false) => checkKnative(docs, 'scale-to-zero', optIn),
  }

  for (const [tree, check] of Object.entries(shapes)) {
    test(`the audit-cronjob component adds a hardened heal CronJob with RBAC of its own to ${tree}, in the webhook's image`, () => {
      const docs = renderWith(`resources: [${tree}]\ncomponents: [${AUDIT}]\n`)
      check(docs)
      checkAudit(docs)
      const plain = render(tree)
      const added = docs.filter((doc) => !plain.some((d) => isDeepStrictEqual(d, doc)))
      assert.deepEqual(added.map((doc) => doc['kind']).sort(), [
        'ClusterRole',
        'ClusterRoleBinding',
        'CronJob',
        'ServiceAccount',
      ])
    })

    test(`the opt-in-label component sends only pods labelled ${LABELS.optIn}=true to the ${tree} webhook, with failurePolicy Fail`, () => {
      const docs = renderWith(`resources: [${tree}]\ncomponents: [${LABEL_PROFILE}]\n`)
      check(docs, true)
      const hook = webhookOf(docs)
      assert.equal(get(hook, 'failurePolicy'), 'Fail')
      assert.deepEqual(list(hook, 'objectSelector.matchExpressions').at(-1), {
        key: LABELS.optIn,
        operator: 'In',
        values: ['true'],
      })
      // Nothing else changes: the same webhook with the one selector expression added and Fail.
      const plain = webhookOf(render(tree))
      const expressions = list(plain, 'objectSelector.matchExpressions')
      assert.deepEqual(hook, {
        ...plain,
        failurePolicy: 'Fail',
        objectSelector: {
          matchExpressions: [
            ...expressions,
            { key: LABELS.optIn, operator: 'In', values: ['true'] },
          ],
        },
      })
    })
  }

  test('both components compose with each other and with the Operator and production overlays', () => {
    const components = `components: [${AUDIT}, ${LABEL_PROFILE}]\n`
    const operator = renderWith(`resources: [knative/overlays/operator]\n${components}`)
    assert.equal(checkKnative(operator, 'scale-to-zero', true), 'knative-serving')
    checkAudit(operator)
    const production = renderWith(`resources: [knative/overlays/production]\n${components}`)
    checkKnative(production, 'production', true)
    checkAudit(production)
    const certManager = renderWith(`resources: [deploy/overlays/cert-manager]\n${components}`)
    checkClassic(certManager, true)
    checkAudit(certManager)
  })

  const CERT_SECRETS = {
    ca: SECRET_NAMES.ca,
    serving: [SECRET_NAMES.classic, SECRET_NAMES.knative],
  } as const

  test('every kustomization that needs a certificate has the certificate Job and renew CronJob; cert-manager has none', () => {
    for (const dir of [
      'deploy',
      'knative',
      'knative/overlays/operator',
      'knative/overlays/production',
    ])
      checkCerts(render(dir), CERT_SECRETS)
    const optIn = renderWith(`resources: [knative]\ncomponents: [${LABEL_PROFILE}, ${AUDIT}]\n`)
    checkCerts(optIn, CERT_SECRETS)
    const certManager = render('deploy/overlays/cert-manager')
    assert.deepEqual(
      certManager.filter((doc) =>
        String(get(doc, 'metadata.name')).startsWith('irsa-webhook-certs'),
      ),
      [],
    )
    // The Secret the webhook reads is one the Job may write, in each shape.
    assert.equal(servingSecretOf(render('deploy')), SECRET_NAMES.classic)
    assert.equal(servingSecretOf(render('knative')), SECRET_NAMES.knative)
  })

  test("an overlay's images: entry moves the webhook and the audit CronJob to the same image", () => {
    const digest = `sha256:${'0a'.repeat(32)}`
    const docs = renderWith(
      [
        'resources: [knative]',
        `components: [${AUDIT}]`,
        'images:',
        '  - name: registry.example.com/irsa-webhook',
        '    newName: registry.internal/irsa-webhook',
        `    digest: ${digest}`,
        '',
      ].join('\n'),
    )
    checkAudit(docs)
    checkCerts(docs, CERT_SECRETS)
    assert.equal(webhookContainer(docs)['image'], `registry.internal/irsa-webhook@${digest}`)
  })

  test('deploy/overlays/cert-manager issues the mounted Secret for the Service name and injects the CA', () => {
    const docs = render('deploy/overlays/cert-manager')
    checkClassic(docs)
    const cert = one(docs, 'Certificate', 'irsa-webhook')
    assert.equal(get(cert, 'spec.secretName'), scriptDefault('classic', 'SECRET'))
    assert.ok(list<string>(cert, 'spec.dnsNames').includes('irsa-webhook.irsa-system.svc'))
    assert.ok(list<string>(cert, 'spec.usages').includes('server auth'))
    const mwc = one(docs, 'MutatingWebhookConfiguration', 'irsa-webhook')
    assert.equal(
      labelsAt(mwc, 'metadata.annotations')['cert-manager.io/inject-ca-from'],
      'irsa-system/irsa-webhook',
    )
  })

  for (const tree of ['deploy', 'knative']) {
    test(`the path-token component puts /mutate/<token> in the ${tree} webhook and the token in the app env`, () => {
      const token = 'path-token-0123456789abcdef'
      const docs = renderWith(
        `resources: [${tree}]\ncomponents: [deploy/components/path-token]\n`,
        {
          'deploy/components/path-token/path-token.env': `MUTATE_PATH_TOKEN=${token}\n`,
        },
      )
      assert.ok(loadConfig({ MUTATE_PATH_TOKEN: token }).ok)
      assert.equal(get(webhookOf(docs), 'clientConfig.service.path'), `${ROUTES.mutate}/${token}`)
      const secret = one(docs, 'Secret', 'irsa-webhook-path-token')
      assert.equal(
        Buffer.from(String(get(secret, 'data.MUTATE_PATH_TOKEN')), 'base64').toString(),
        token,
      )
      const workload = docs.find(
        (doc) =>
          ['Deployment', 'Service'].includes(String(doc['kind'])) && get(doc, 'spec.template'),
      )
      const env = list<Container>(workload, 'spec.template.spec.containers')[0]?.env ?? []
      assert.deepEqual(
        env.find((e) => e.name === 'MUTATE_PATH_TOKEN'),
        {
          name: 'MUTATE_PATH_TOKEN',
          valueFrom: {
            secretKeyRef: { name: 'irsa-webhook-path-token', key: 'MUTATE_PATH_TOKEN' },
          },
        },
      )
      assert.equal(
        docs.filter((doc) => doc['kind'] === 'ConfigMap').length,
        0,
        'the token source stays local',
      )
    })
  }
})
