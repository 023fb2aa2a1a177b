/**
 * `npm run release:manifests`: the install bundles a release ships, rendered for real (kubectl kustomize, offline)
 * and held to the same invariants as the kustomize trees (test/support/manifests.ts), plus the pinned image and the
 * version label; its command line refuses what must not be released, with the documented exit codes.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { SECRET_NAMES } from '../../cli/certs/certs.ts'
import { BUNDLES } from '../../scripts/release-manifests.ts'
import {
  type Container,
  checkAudit,
  checkCerts,
  checkClassic,
  checkKnative,
  type Doc,
  get,
  list,
  noKubectl,
  one,
  parse,
  render,
  renderWith,
} from '../support/manifests.ts'
import { ROOT } from '../support/process.ts'

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`
const IMAGE = `ghcr.io/owner/irsa-webhook@${DIGEST}`
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
}

/** Runs the command as `npm run release:manifests` does; `path` replaces PATH (to hide kubectl). */
function release(args: string[], path = process.env['PATH'] ?? '') {
  const run = spawnSync(process.execPath, ['scripts/release-manifests.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: path },
    timeout: 120_000,
  })
  return { code: run.status, stdout: run.stdout, stderr: run.stderr }
}

/** The containers of every workload: Deployment, Knative Service, CronJob. */
const containersOf = (docs: Doc[]): Container[] =>
  docs.flatMap((doc) => [
    ...list<Container>(doc, 'spec.template.spec.containers'),
    ...list<Container>(doc, 'spec.jobTemplate.spec.template.spec.containers'),
  ])

/** The objects with every container image replaced, for comparing a bundle with its kustomization. */
const withImage = (docs: Doc[], image: string): Doc[] =>
  JSON.parse(JSON.stringify(docs).replaceAll(/"image":"[^"]*"/g, `"image":"${image}"`)) as Doc[]

describe('release bundles (npm run release:manifests)', { skip: noKubectl }, () => {
  let out: string
  let run: ReturnType<typeof release>
  const bundle = (file: string) => readFileSync(join(out, file), 'utf8')
  before(() => {
    out = mkdtempSync(join(tmpdir(), 'irsa-release-'))
    run = release(['--image', IMAGE, '--out', out])
  })
  after(() => rmSync(out, { recursive: true, force: true }))

  test('are written, eight of them, and the step each one needs is printed at the end', () => {
    assert.equal(run.code, 0, run.stderr)
    assert.deepEqual(
      BUNDLES.map((b) => b.file),
      [
        'irsa-webhook-knative.yaml',
        'irsa-webhook-knative-production.yaml',
        'irsa-webhook-knative-opt-in-label.yaml',
        'irsa-webhook-classic.yaml',
        'irsa-webhook-classic-cert-manager.yaml',
        'irsa-webhook-audit-cronjob.yaml',
        'irsa-webhook-policy.yaml',
        'irsa-webhook-policy-opt-in-label.yaml',
      ],
    )
    const steps = run.stdout.slice(run.stdout.indexOf('Install one bundle'))
    for (const file of [
      'irsa-webhook-knative',
      'irsa-webhook-knative-production',
      'irsa-webhook-knative-opt-in-label',
      'irsa-webhook-classic',
    ])
      assert.match(
        steps,
        new RegExp(
          `${file}\\.yaml\\n\\s+then nothing: the Job irsa-webhook-certs makes the certificate`,
        ),
      )
    assert.match(steps, /irsa-webhook-classic-cert-manager\.yaml\n\s+then nothing: cert-manager/)
    assert.match(steps, /irsa-webhook-audit-cronjob\.yaml\n\s+then nothing: an add-on/)
    assert.match(steps, /irsa-webhook-policy\.yaml\n\s+then nothing: the API server applies/)
  })

  for (const { file, kustomization, components, componentsOnly, image } of BUNDLES) {
    const from = [kustomization, ...components].join(' + ')
    const pinned = image === false ? 'no image (policy mode)' : 'the image pinned by digest'
    test(`${file} is ${from}${componentsOnly ? ' (its components only)' : ''} with ${pinned} and the version label`, () => {
      const text = bundle(file)
      assert.match(text, new RegExp(`^# irsa-webhook ${version.replaceAll('.', '\\.')}: `))
      const docs = parse(text)
      const images = containersOf(docs).map((c) => c['image'])
      if (image === false) assert.deepEqual(images, [])
      else assert.deepEqual(new Set(images), new Set([IMAGE]))
      if (image !== false) assert.ok(images.length > 0)
      for (const doc of docs) {
        assert.equal(
          (get(doc, 'metadata.labels') as Record<string, string>)['app.kubernetes.io/version'],
          version,
          `${doc['kind']} ${get(doc, 'metadata.name')}`,
        )
      }
      // Nothing else differs from what `kubectl apply -k` of the tree (with those components) would create.
      const tree =
        components.length === 0
          ? render(kustomization)
          : renderWith(`resources: [${kustomization}]\ncomponents: [${components.join(', ')}]\n`)
      const expected = componentsOnly
        ? tree.filter((doc) => !render(kustomization).some((d) => isDeepStrictEqual(d, doc)))
        : tree
      assert.deepEqual(docs, withImage(expected, IMAGE))
    })
  }

  test('hold the invariants of the kustomize trees', () => {
    const knative = parse(bundle('irsa-webhook-knative.yaml'))
    assert.equal(checkKnative(knative, 'scale-to-zero'), 'kourier-system')
    checkAudit(knative)
    checkKnative(parse(bundle('irsa-webhook-knative-production.yaml')), 'production')
    checkKnative(parse(bundle('irsa-webhook-knative-opt-in-label.yaml')), 'scale-to-zero', true)
    const classic = parse(bundle('irsa-webhook-classic.yaml'))
    checkClassic(classic)
    const certManager = parse(bundle('irsa-webhook-classic-cert-manager.yaml'))
    checkClassic(certManager)
    one(certManager, 'Certificate', 'irsa-webhook')
    // Every bundle that needs a certificate makes it in the cluster; the cert-manager one does not.
    for (const docs of [
      knative,
      classic,
      ...['production', 'opt-in-label'].map((p) => parse(bundle(`irsa-webhook-knative-${p}.yaml`))),
    ])
      checkCerts(docs, {
        ca: SECRET_NAMES.ca,
        serving: [SECRET_NAMES.classic, SECRET_NAMES.knative],
      })
    assert.equal(
      certManager.some((doc) => doc['kind'] === 'Job'),
      false,
    )
  })

  test('the audit-cronjob add-on completes any other bundle, and is what the knative bundle already has', () => {
    const addOn = parse(bundle('irsa-webhook-audit-cronjob.yaml'))
    assert.deepEqual(addOn.map((doc) => doc['kind']).sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'CronJob',
      'ServiceAccount',
    ])
    const knative = parse(bundle('irsa-webhook-knative.yaml'))
    for (const doc of addOn)
      assert.ok(
        knative.some((d) => isDeepStrictEqual(d, doc)),
        `${doc['kind']} is the knative bundle's`,
      )
    for (const file of BUNDLES.map((b) => b.file).filter((f) => f.includes('-classic'))) {
      const docs = [...parse(bundle(file)), ...addOn]
      checkClassic(docs)
      checkAudit(docs)
    }
    const production = [...parse(bundle('irsa-webhook-knative-production.yaml')), ...addOn]
    checkKnative(production, 'production')
    checkAudit(production)
  })

  test("the README's verify-before-apply step finds the pinned image in a bundle", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const line: string = /^IMAGE=\$\(grep .*\)$/m.exec(readme)?.[0] ?? ''
    assert.ok(line, 'README has the IMAGE=$(grep …) line')
    for (const { file } of BUNDLES.filter((b) => b.image !== false)) {
      const script = `${line.replace('irsa-webhook-knative.yaml', file)}; echo "$IMAGE"`
      const found = spawnSync('bash', ['-c', script], {
        cwd: out,
        encoding: 'utf8',
      })
      assert.equal(found.stdout, `${IMAGE}\n`, file)
    }
  })

  test('with --allow-tag, a tag pins the image by tag', () => {
    const tagged = mkdtempSync(join(tmpdir(), 'irsa-release-tag-'))
    try {
      const result = release([
        '--image',
        'registry.example.org:5000/team/irsa-webhook:0.1.0',
        '--allow-tag',
        '--out',
        tagged,
      ])
      assert.equal(result.code, 0, result.stderr)
      const docs = parse(readFileSync(join(tagged, 'irsa-webhook-classic.yaml'), 'utf8'))
      // The webhook, the certificate Job and the renew CronJob.
      assert.deepEqual(
        containersOf(docs).map((c) => c['image']),
        Array(3).fill('registry.example.org:5000/team/irsa-webhook:0.1.0'),
      )
      const knative = parse(readFileSync(join(tagged, 'irsa-webhook-knative.yaml'), 'utf8'))
      assert.deepEqual(
        new Set(containersOf(knative).map((c) => c['image'])),
        new Set(['registry.example.org:5000/team/irsa-webhook:0.1.0']),
      )
    } finally {
      rmSync(tagged, { recursive: true, force: true })
    }
  })
})

describe('the documented bundles are the ones released', () => {
  test("the README's install table lists every bundle, and no doc names a bundle that is not released", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    for (const { file } of BUNDLES) assert.ok(readme.includes(`| \`${file}\` |`), file)
    const files = new Set(BUNDLES.map((b) => b.file))
    for (const doc of ['README.md', 'CHANGELOG.md', 'docs/deploy.md', 'docs/knative.md']) {
      const named =
        readFileSync(join(ROOT, doc), 'utf8').match(/\birsa-webhook-[\w-]+\.yaml\b/g) ?? []
      for (const name of named) assert.ok(files.has(name), `${doc}: ${name}`)
    }
  })
})

describe('release:manifests refuses what must not ship (exit 2) and reports failures (exit 1)', () => {
  const refused: [string, string[], RegExp][] = [
    [
      'a bare tag',
      ['--image', 'ghcr.io/owner/irsa-webhook:0.1.0'],
      /pinned by tag only.*--allow-tag/,
    ],
    [
      'no tag and no digest',
      ['--image', 'ghcr.io/owner/irsa-webhook'],
      /neither a digest nor a tag/,
    ],
    [
      'a short digest',
      ['--image', 'ghcr.io/owner/irsa-webhook@sha256:abc'],
      /not an image reference/,
    ],
    [
      'an upper-case repository (the lower-case reference is suggested)',
      ['--image', `ghcr.io/Owner/irsa-webhook@${DIGEST}`],
      new RegExp(
        `not an image reference .*; did you mean ghcr\\.io/owner/irsa-webhook@${DIGEST}\\?`,
      ),
    ],
    [
      'an upper-case repository with a tag (the tag is kept)',
      ['--image', 'registry.example.org:5000/Team/irsa-webhook:RC1'],
      /did you mean registry\.example\.org:5000\/team\/irsa-webhook:RC1\?/,
    ],
    ['no --image', [], /--image is required/],
    ['an unknown option', ['--image', IMAGE, '--push'], /Unknown option '--push'/],
  ]
  for (const [what, args, message] of refused) {
    test(what, () => {
      const result = release(args)
      assert.equal(result.code, 2)
      assert.match(result.stderr, message)
      assert.match(result.stderr, /Usage: npm run release:manifests/)
      assert.equal(result.stdout, '')
    })
  }

  test('kubectl missing: exit 1 with the reason', () => {
    const out = mkdtempSync(join(tmpdir(), 'irsa-release-nokubectl-'))
    try {
      const result = release(['--image', IMAGE, '--out', out], dirname(process.execPath))
      assert.equal(result.code, 1)
      assert.match(result.stderr, /rendering failed: .*kubectl/)
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })
})
