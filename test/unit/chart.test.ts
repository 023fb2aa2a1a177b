/**
 * The Helm chart (charts/irsa-webhook) with the real Helm (test/support/helm.ts builds it from its Go module):
 * `helm lint`, `helm template` for each mode and for the values users set, and values.schema.json refusing bad
 * values with a message naming the value.
 *
 * One source of truth: the kustomize trees are the source; the chart is written by hand and this test holds it to
 * them. With the values that describe a release bundle (none for irsa-webhook-knative.yaml, mode=classic for
 * irsa-webhook-classic.yaml, ...) the chart renders the objects of that bundle from `npm run release:manifests`
 * (scripts/release-manifests.ts), object by object, with the same image reference on both sides. Three differences
 * are allowed and only these: the chart leaves out the Namespace (`helm install --create-namespace` makes the
 * release namespace; Helm cannot own it), its objects carry Helm's metadata labels (HELM_LABELS), and the
 * certificate Job's name ends with a hash of its pod template (so an upgrade that changes the template makes a new
 * Job instead of failing on an immutable one).
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { LABELS } from '../../function/names.ts'
import { BUNDLES } from '../../scripts/release-manifests.ts'
import { helmOrSkip, helmVersion, runHelm } from '../support/helm.ts'
import {
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
  webhookContainer,
  webhookOf,
} from '../support/manifests.ts'
import { ROOT } from '../support/process.ts'

const { helm, skip } = await helmOrSkip()
const CHART = join(ROOT, 'charts/irsa-webhook')
const NAMESPACE = 'irsa-system'
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`
const REPOSITORY = 'ghcr.io/owner/irsa-webhook'
const IMAGE = `${REPOSITORY}@${DIGEST}`
const PINNED = ['image.repository', REPOSITORY, 'image.digest', DIGEST]
/** The labels Helm's chart adds to every object's metadata, and nothing else the bundles lack. */
const HELM_LABELS = ['app.kubernetes.io/managed-by', 'app.kubernetes.io/instance', 'helm.sh/chart']
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
}

/** `--set` pairs (flat: key, value, key, value) as helm arguments; values go through --set-json when not strings. */
function setArgs(values: readonly unknown[]): string[] {
  const args: string[] = []
  for (let i = 0; i < values.length; i += 2) {
    const [key, value] = [values[i], values[i + 1]]
    args.push(
      ...(typeof value === 'string'
        ? ['--set-string', `${key}=${value}`]
        : ['--set-json', `${key}=${JSON.stringify(value)}`]),
    )
  }
  return args
}

/** `helm template` of the chart as release `irsa-webhook` in irsa-system; returns the run (code, stdout, stderr). */
const template = (values: readonly unknown[] = [], extra: string[] = []) =>
  runHelm(helm as string, [
    'template',
    'irsa-webhook',
    CHART,
    '--namespace',
    NAMESPACE,
    ...setArgs(values),
    ...extra,
  ])

/** The objects the chart renders with `values` (the image pinned as in the bundles unless given); must succeed. */
function render(values: readonly unknown[] = []): Doc[] {
  const run = template([...PINNED, ...values])
  assert.equal(run.code, 0, run.stderr)
  return parse(run.stdout)
}

const key = (doc: Doc) =>
  [
    doc['apiVersion'],
    doc['kind'],
    get(doc, 'metadata.namespace') ?? '',
    get(doc, 'metadata.name'),
  ].join(' ')

/** The certificate Job's name in the chart: the bundle's, plus a hash of its pod template (templates/certs.yaml). */
const CERTS_JOB = /^irsa-webhook-certs-[0-9a-f]{8}$/

/**
 * A chart object as the bundle has it: without Helm's metadata labels (HELM_LABELS), and for the certificate Job,
 * without the hash suffix of its name.
 */
function asInBundle(doc: Doc): Doc {
  const copy = structuredClone(doc)
  if (copy['kind'] === 'Job') {
    const metadata = copy['metadata'] as Record<string, unknown>
    assert.match(String(metadata['name']), CERTS_JOB)
    metadata['name'] = 'irsa-webhook-certs'
  }
  const labels = get(copy, 'metadata.labels') as Record<string, string>
  for (const label of HELM_LABELS) {
    assert.ok(label in labels, `${key(doc)} has ${label}`)
    delete labels[label]
  }
  return copy
}

describe('the helm build (test/support/helm.ts)', () => {
  const noGo = (cache: string): NodeJS.ProcessEnv => ({
    PATH: '/usr/bin:/bin',
    IRSA_CLUSTER_CACHE: cache,
  })

  test('without Go and without a build: npm run helm:build says what to install and that the tests skip (exit 0; in CI exit 3); tests skip, except in CI', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'irsa-helm-cache-'))
    try {
      const build = (env: NodeJS.ProcessEnv) =>
        spawnSync(process.execPath, ['test/support/helm.ts'], { cwd: ROOT, encoding: 'utf8', env })
      const run = build(noGo(cache))
      assert.equal(run.status, 0, run.stderr)
      assert.match(
        run.stderr,
        /^helm:build: no Go toolchain: `go` is not on PATH\. .*install Go 1\.26/,
      )
      assert.match(
        run.stderr,
        /\nhelm:build: the Helm tests will be skipped \(in CI, CI=true, this fails\)\n$/,
      )
      const ci = build({ ...noGo(cache), CI: 'true' })
      assert.equal(ci.status, 3, ci.stderr)
      assert.match(ci.stderr, /^helm:build: no Go toolchain/)
      const skipped = await helmOrSkip(noGo(cache))
      assert.equal(skipped.helm, undefined)
      assert.match(String(skipped.skip), /^skipped: no Go toolchain/)
      await assert.rejects(helmOrSkip({ ...noGo(cache), CI: 'true' }), /no Go toolchain/)
    } finally {
      rmSync(cache, { recursive: true, force: true })
    }
  })

  /** A `go` on PATH that records each call and "builds" by writing the -o file after a pause; `fail` fails builds. */
  function fakeGo(dir: string, fail = false): NodeJS.ProcessEnv {
    const bin = join(dir, 'bin')
    mkdirSync(bin, { recursive: true })
    writeFileSync(
      join(bin, 'go'),
      [
        '#!/usr/bin/env bash',
        `echo "$*" >> ${join(dir, 'calls')}`,
        'if [ "$1" = env ]; then echo go9.9.9; exit 0; fi',
        'if [ "$1" = build ]; then',
        fail ? '  echo "compile error" >&2; exit 2' : '  sleep 1',
        '  while [ "$1" != -o ]; do shift; done; echo built > "$2"; exit 0',
        'fi',
        'exit 0',
        '',
      ].join('\n'),
      { mode: 0o755 },
    )
    return { PATH: `${bin}:/usr/bin:/bin`, IRSA_CLUSTER_CACHE: join(dir, 'cache') }
  }

  test('concurrent callers build once (a lock), and the binary appears whole (a rename); a failed step names its log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'irsa-helm-fake-go-'))
    try {
      const env = fakeGo(dir)
      const runs = await Promise.all(
        [1, 2, 3].map(
          () =>
            new Promise<{ code: number | null; stdout: string }>((resolve) => {
              const child = spawn(process.execPath, ['test/support/helm.ts'], { cwd: ROOT, env })
              let stdout = ''
              child.stdout.on('data', (chunk) => {
                stdout += chunk
              })
              child.on('close', (code) => resolve({ code, stdout }))
            }),
        ),
      )
      const binary = join(dir, 'cache', 'helm', `${helmVersion()}-go9.9.9`, 'helm')
      // Each run then prints `helm version` of what it got: the fake build is a text file, so that step fails (1).
      for (const run of runs) assert.equal(run.code, 1)
      assert.equal(readFileSync(binary, 'utf8'), 'built\n')
      const builds = readFileSync(join(dir, 'calls'), 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('build '))
      assert.equal(builds.length, 1, 'one build for three callers')
      assert.match(
        builds[0] ?? '',
        new RegExp(`-X helm\\.sh/helm/v4/internal/version\\.version=${helmVersion()}`),
      )
      assert.match(builds[0] ?? '', / helm\.sh\/helm\/v4\/cmd\/helm$/)
      assert.deepEqual(
        await helmOrSkip(env),
        { helm: binary, skip: false },
        'then reused without building',
      )

      const failing = join(dir, 'failing')
      mkdirSync(failing)
      const failed = spawnSync(process.execPath, ['test/support/helm.ts'], {
        cwd: ROOT,
        encoding: 'utf8',
        env: fakeGo(failing, true),
      })
      assert.equal(failed.status, 1)
      assert.match(
        failed.stderr,
        /helm build step "go build helm" failed \(exit 2\); full log: .*build\.log\n[\s\S]*compile error/,
      )
      assert.ok(
        !existsSync(join(failing, 'cache', 'helm', `${helmVersion()}-go9.9.9`, 'helm')),
        'no binary from a failed build',
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('without Go, a finished build of the pinned version in the cache is used', {
    skip,
  }, async () => {
    const cache = mkdtempSync(join(tmpdir(), 'irsa-helm-cache-'))
    try {
      const dir = join(cache, 'helm', `${helmVersion()}-go1.0.0`)
      mkdirSync(dir, { recursive: true })
      symlinkSync(helm as string, join(dir, 'helm'))
      assert.deepEqual(await helmOrSkip(noGo(cache)), { helm: join(dir, 'helm'), skip: false })
    } finally {
      rmSync(cache, { recursive: true, force: true })
    }
  })
})

describe('the chart (charts/irsa-webhook) with the real helm', { skip }, () => {
  test('helm version is the pinned one (built with its version ldflags)', () => {
    const run = runHelm(helm as string, ['version', '--template', '{{ .Version }}'])
    assert.equal(run.code, 0, run.stderr)
    const goMod = readFileSync(join(ROOT, 'test/tools/helm/go.mod'), 'utf8')
    assert.equal(run.stdout, /^\s*helm\.sh\/helm\/v4 (v\S+)/m.exec(goMod)?.[1])
  })

  test('Chart.yaml: version and appVersion are the release version', () => {
    const run = runHelm(helm as string, ['show', 'chart', CHART])
    assert.equal(run.code, 0, run.stderr)
    const chart = parse(run.stdout)[0] as Doc
    assert.equal(chart['name'], 'irsa-webhook')
    assert.equal(chart['version'], version)
    assert.equal(chart['appVersion'], version)
  })

  test('helm lint --strict passes for each mode and certificate source', () => {
    for (const values of [
      [],
      ['mode', 'classic'],
      ['mode', 'classic', 'certificates.source', 'cert-manager'],
      ['knative.minScale', 1, 'optInLabel', true],
      PINNED,
    ]) {
      const run = runHelm(helm as string, ['lint', '--strict', CHART, ...setArgs(values)])
      assert.equal(run.code, 0, `${values.join(' ')}\n${run.stdout}${run.stderr}`)
      assert.match(run.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/)
    }
  })

  test('helm lint reports a broken value (so a clean lint above means something)', () => {
    const run = runHelm(helm as string, ['lint', CHART, ...setArgs(['mode', 'openshift'])])
    assert.notEqual(run.code, 0)
    assert.match(run.stdout + run.stderr, /mode/)
  })

  describe('renders the objects of each release bundle, object by object', {
    skip: noKubectl,
  }, () => {
    let out: string
    before(() => {
      out = mkdtempSync(join(tmpdir(), 'irsa-chart-bundles-'))
      const run = spawnSync(
        process.execPath,
        ['scripts/release-manifests.ts', '--image', IMAGE, '--out', out],
        { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
      )
      assert.equal(run.status, 0, run.stderr)
    })
    after(() => rmSync(out, { recursive: true, force: true }))
    const bundle = (file: string) => parse(readFileSync(join(out, file), 'utf8'))

    /** Each bundle and the values that describe it; the audit add-on is checked with the classic bundle below. */
    const pairs: [string, unknown[]][] = [
      ['irsa-webhook-knative.yaml', []],
      ['irsa-webhook-knative-production.yaml', ['knative.minScale', 1]],
      ['irsa-webhook-knative-opt-in-label.yaml', ['optInLabel', true]],
      ['irsa-webhook-classic.yaml', ['mode', 'classic']],
      [
        'irsa-webhook-classic-cert-manager.yaml',
        ['mode', 'classic', 'certificates.source', 'cert-manager'],
      ],
    ]
    // The chart installs the webhook (knative or classic); policy mode runs no webhook and is installed from its own
    // bundles (docs/policy.md), so its bundles (no image) have no chart values.
    test('every bundle but the add-on and the policy bundles has its values here', () => {
      assert.deepEqual(
        pairs.map(([file]) => file).sort(),
        BUNDLES.filter((b) => !b.componentsOnly && b.image !== false)
          .map((b) => b.file)
          .sort(),
      )
    })

    for (const [file, values] of pairs) {
      test(`${values.length ? values.join('=').replaceAll(/=(?=[a-z])/gi, ' ') : 'default values'} = ${file} (less its Namespace)`, () => {
        const chart = render(values).map(asInBundle)
        const expected = bundle(file)
        const namespace = one(expected, 'Namespace', NAMESPACE)
        const fromBundle = expected.filter((doc) => doc !== namespace)
        assert.deepEqual(chart.map(key).sort(), fromBundle.map(key).sort(), 'the same objects')
        for (const doc of chart)
          assert.deepEqual(
            doc,
            fromBundle.find((d) => key(d) === key(doc)),
            key(doc),
          )
      })
    }

    test('mode=classic auditCronJob.enabled=true = irsa-webhook-classic.yaml + the irsa-webhook-audit-cronjob.yaml add-on', () => {
      const chart = render(['mode', 'classic', 'auditCronJob.enabled', true]).map(asInBundle)
      const expected = [
        ...bundle('irsa-webhook-classic.yaml').filter((doc) => doc['kind'] !== 'Namespace'),
        ...bundle('irsa-webhook-audit-cronjob.yaml'),
      ]
      assert.deepEqual(chart.map(key).sort(), expected.map(key).sort())
      for (const doc of chart)
        assert.deepEqual(
          doc,
          expected.find((d) => key(d) === key(doc)),
        )
    })
  })

  test('the defaults hold the invariants of the bundles; the image is pinned by digest, or the appVersion tag', () => {
    const knative = render()
    assert.equal(checkKnative(knative, 'scale-to-zero'), 'kourier-system')
    checkAudit(knative)
    checkClassic(render(['mode', 'classic']))
    checkKnative(render(['knative.minScale', 1]), 'production')
    checkKnative(render(['optInLabel', true]), 'scale-to-zero', true)
    checkClassic(render(['mode', 'classic', 'optInLabel', true]), true)
    assert.equal(webhookContainer(knative)['image'], IMAGE)
    const unpinned = template(['mode', 'classic'])
    assert.equal(unpinned.code, 0, unpinned.stderr)
    assert.equal(
      webhookContainer(parse(unpinned.stdout))['image'],
      `registry.example.com/irsa-webhook:${version}`,
    )
    const tagged = template(['mode', 'classic', 'image.tag', 'dev-1'])
    assert.equal(
      webhookContainer(parse(tagged.stdout))['image'],
      'registry.example.com/irsa-webhook:dev-1',
    )
  })

  test('Helm labels go on metadata only: no selector and no pod template changes between releases', () => {
    for (const doc of [...render(), ...render(['mode', 'classic', 'auditCronJob.enabled', true])]) {
      const text = JSON.stringify({ ...doc, metadata: undefined })
      for (const label of HELM_LABELS) assert.ok(!text.includes(label), `${key(doc)}: ${label}`)
      assert.equal(get(doc, 'metadata.labels.app.kubernetes.io/version'), undefined)
      assert.equal(
        (get(doc, 'metadata.labels') as Record<string, string>)['app.kubernetes.io/version'],
        version,
      )
      assert.equal(
        (get(doc, 'metadata.labels') as Record<string, string>)['app.kubernetes.io/instance'],
        'irsa-webhook',
      )
    }
  })

  describe('values users set land where they belong', () => {
    const placement = {
      nodeSelector: { 'kubernetes.io/os': 'linux', pool: 'system' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'system', effect: 'NoSchedule' }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'pool', operator: 'In', values: ['system'] }] },
            ],
          },
        },
      },
      priorityClassName: 'system-cluster-critical',
      podAnnotations: { 'example.com/team': 'platform' },
      resources: { requests: { cpu: '100m', memory: '96Mi' }, limits: { memory: '192Mi' } },
    }
    const flat = Object.entries(placement).flat()

    for (const mode of ['classic', 'knative'] as const) {
      test(`${mode}: nodeSelector, tolerations, affinity, priorityClassName, podAnnotations, resources`, () => {
        const docs = render(['mode', mode, 'auditCronJob.enabled', true, ...flat])
        const workload =
          mode === 'classic'
            ? one(docs, 'Deployment', 'irsa-webhook')
            : one(docs, 'Service', 'irsa-webhook', 'serving.knative.dev/v1')
        const pod = get(workload, 'spec.template') as Doc
        for (const field of [
          'nodeSelector',
          'tolerations',
          'affinity',
          'priorityClassName',
        ] as const)
          assert.deepEqual(get(pod, `spec.${field}`), placement[field], field)
        const annotations = get(pod, 'metadata.annotations') as Record<string, string>
        assert.equal(annotations['example.com/team'], 'platform')
        assert.deepEqual(webhookContainer(docs)['resources'], placement.resources)
        // The heal CronJob's pods follow nodeSelector and tolerations (not the webhook's affinity or priority).
        const audit = get(
          one(docs, 'CronJob', 'irsa-webhook-audit'),
          'spec.jobTemplate.spec.template.spec',
        )
        assert.deepEqual(get(audit, 'nodeSelector'), placement.nodeSelector)
        assert.deepEqual(get(audit, 'tolerations'), placement.tolerations)
        assert.equal(get(audit, 'affinity'), undefined)
        if (mode === 'classic') checkClassic(docs)
        else {
          checkKnative(docs, 'scale-to-zero')
          assert.equal(annotations['autoscaling.knative.dev/min-scale'], '0')
        }
        checkAudit(docs)
      })
    }

    test('classic: replicas and the PodDisruptionBudget', () => {
      const three = render([
        'mode',
        'classic',
        'classic.replicas',
        3,
        'classic.podDisruptionBudget.minAvailable',
        2,
      ])
      assert.equal(get(one(three, 'Deployment', 'irsa-webhook'), 'spec.replicas'), 3)
      assert.equal(get(one(three, 'PodDisruptionBudget', 'irsa-webhook'), 'spec.minAvailable'), 2)
      const single = render([
        'mode',
        'classic',
        'classic.replicas',
        1,
        'classic.podDisruptionBudget.enabled',
        false,
      ])
      assert.equal(get(one(single, 'Deployment', 'irsa-webhook'), 'spec.replicas'), 1)
      assert.equal(single.filter((doc) => doc['kind'] === 'PodDisruptionBudget').length, 0)
    })

    test('knative: min and max scale; a warm pod or the opt-in label makes failurePolicy Fail and drops the heal CronJob', () => {
      const scale = (docs: Doc[], which: string) =>
        (
          get(
            one(docs, 'Service', 'irsa-webhook', 'serving.knative.dev/v1'),
            'spec.template.metadata.annotations',
          ) as Record<string, string>
        )[`autoscaling.knative.dev/${which}`]
      const warm = render(['knative.minScale', 2, 'knative.maxScale', 5])
      assert.deepEqual([scale(warm, 'min-scale'), scale(warm, 'max-scale')], ['2', '5'])
      assert.equal(get(webhookOf(warm), 'failurePolicy'), 'Fail')
      assert.equal(
        warm.filter((doc) => get(doc, 'metadata.name') === 'irsa-webhook-audit').length,
        0,
      )
      const healed = render([
        'knative.minScale',
        1,
        'auditCronJob.enabled',
        true,
        'auditCronJob.schedule',
        '*/10 * * * *',
      ])
      assert.equal(
        get(one(healed, 'CronJob', 'irsa-webhook-audit'), 'spec.schedule'),
        '*/10 * * * *',
      )
      const cold = render(['auditCronJob.enabled', false])
      assert.equal(get(webhookOf(cold), 'failurePolicy'), 'Ignore')
      assert.equal(
        cold.filter((doc) => get(doc, 'metadata.name') === 'irsa-webhook-audit').length,
        0,
      )
    })

    test('knative: the gateway namespace (Knative Operator installs) moves the alias, the host and the exclusion', () => {
      const docs = render(['knative.gatewayNamespace', 'knative-serving'])
      assert.equal(checkKnative(docs, 'scale-to-zero'), 'knative-serving')
      one(docs, 'DomainMapping', 'irsa-webhook.knative-serving.svc')
    })

    test('the opt-in label adds the api.vultr.com/irsa: "true" selector in both modes', () => {
      for (const mode of ['classic', 'knative']) {
        const hook = webhookOf(render(['mode', mode, 'optInLabel', true]))
        assert.deepEqual(list(hook, 'objectSelector.matchExpressions').at(-1), {
          key: LABELS.optIn,
          operator: 'In',
          values: ['true'],
        })
      }
    })

    test('certificates: an existing Secret and its CA; cert-manager in knative mode certifies the gateway host', () => {
      const ca = Buffer.from(
        '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      ).toString('base64')
      const values = [
        'certificates.source',
        'existing',
        'certificates.existing.secretName',
        'my-tls',
        'certificates.existing.caBundle',
        ca,
      ]
      const classic = render(['mode', 'classic', ...values])
      const volume = list(
        get(one(classic, 'Deployment', 'irsa-webhook'), 'spec.template'),
        'spec.volumes',
      )[0]
      assert.equal(get(volume, 'secret.secretName'), 'my-tls')
      assert.equal(get(webhookOf(classic), 'clientConfig.caBundle'), ca)
      const knative = render(values)
      assert.equal(get(one(knative, 'DomainMapping'), 'spec.tls.secretName'), 'my-tls')
      assert.equal(get(webhookOf(knative), 'clientConfig.caBundle'), ca)
      const managed = render(['certificates.source', 'cert-manager'])
      const certificate = one(managed, 'Certificate', 'irsa-webhook')
      assert.deepEqual(get(certificate, 'spec.dnsNames'), ['irsa-webhook.kourier-system.svc'])
      assert.equal(
        get(certificate, 'spec.secretName'),
        get(one(managed, 'DomainMapping'), 'spec.tls.secretName'),
      )
      assert.equal(
        (
          get(one(managed, 'MutatingWebhookConfiguration'), 'metadata.annotations') as Record<
            string,
            string
          >
        )['cert-manager.io/inject-ca-from'],
        `${NAMESPACE}/irsa-webhook`,
      )
      assert.equal(get(webhookOf(managed), 'clientConfig.caBundle'), undefined)
    })

    test('certificates.source=job (the default): the Job and renew CronJob of the bundles; other sources have none', () => {
      const secrets = { ca: 'irsa-webhook-ca', serving: ['irsa-webhook-certs', 'irsa-webhook-tls'] }
      for (const mode of ['classic', 'knative']) {
        const docs = render(['mode', mode])
        // checkCerts reads the roles in kustomize's order (Role before ClusterRole); Helm sorts ClusterRoles first.
        const kustomizeOrder = [
          ...docs.filter((doc) => doc['kind'] !== 'ClusterRole'),
          ...docs.filter((doc) => doc['kind'] === 'ClusterRole'),
        ]
        checkCerts(kustomizeOrder.map(asInBundle), secrets)
        const job = one(docs, 'Job')
        const pod = get(job, 'spec.template')
        assert.deepEqual(
          get(one(docs, 'CronJob', 'irsa-webhook-certs-renew'), 'spec.jobTemplate.spec.template'),
          pod,
        )
        for (const source of ['existing', 'cert-manager']) {
          const other = render(['mode', mode, 'certificates.source', source])
          assert.deepEqual(
            other.filter(
              (doc) =>
                String(get(doc, 'metadata.name')).startsWith('irsa-webhook-certs') &&
                doc['kind'] !== 'Certificate',
            ),
            [],
            `${mode} ${source}`,
          )
        }
      }
      const renew = render(['certificates.job.renewSchedule', '5 4 * * 1'])
      assert.equal(
        get(one(renew, 'CronJob', 'irsa-webhook-certs-renew'), 'spec.schedule'),
        '5 4 * * 1',
      )
    })

    test("the certificate Job's name follows its pod template: a new image or placement makes a new Job, other values do not", () => {
      const jobName = (values: unknown[]) =>
        String(get(one(render(values), 'Job'), 'metadata.name'))
      const base = jobName(['mode', 'classic'])
      assert.match(base, /^irsa-webhook-certs-[0-9a-f]{8}$/)
      assert.equal(jobName(['mode', 'classic', 'classic.replicas', 3, 'optInLabel', true]), base)
      assert.notEqual(
        jobName(['mode', 'classic', 'image.digest', `sha256:${'f'.repeat(64)}`]),
        base,
      )
      assert.notEqual(jobName(['mode', 'classic', 'nodeSelector', { pool: 'system' }]), base)
    })

    test('another release name and namespace: the certs and audit commands are told the webhook configuration and namespace', () => {
      const run = runHelm(helm as string, [
        'template',
        'platform-irsa',
        CHART,
        '--namespace',
        'platform',
        ...setArgs([...PINNED, 'mode', 'classic', 'auditCronJob.enabled', true]),
      ])
      assert.equal(run.code, 0, run.stderr)
      const docs = parse(run.stdout)
      assert.equal(get(one(docs, 'MutatingWebhookConfiguration'), 'metadata.name'), 'platform-irsa')
      const command = (doc: Doc, path: string) => list<string>(get(doc, path), 'command')
      assert.deepEqual(command(one(docs, 'Job'), 'spec.template.spec.containers.0').slice(-5), [
        '--job',
        '--namespace',
        'platform',
        '--webhook',
        'platform-irsa',
      ])
      assert.deepEqual(
        command(
          one(docs, 'CronJob', 'irsa-webhook-audit'),
          'spec.jobTemplate.spec.template.spec.containers.0',
        ).slice(-2),
        ['--configuration', 'platform-irsa'],
      )
      for (const kind of ['ClusterRole', 'ClusterRoleBinding'])
        assert.deepEqual(
          docs
            .filter((doc) => doc['kind'] === kind)
            .map((doc) => get(doc, 'metadata.name'))
            .sort(),
          ['platform-irsa-audit', 'platform-irsa-certs', 'platform-irsa-sa-reader'],
        )
      const certsRole = one(docs, 'ClusterRole', 'platform-irsa-certs')
      assert.deepEqual(get(certsRole, 'rules.0.resourceNames'), ['platform-irsa'])
    })

    test('another release namespace: every namespaced object, the exclusion and the RBAC subjects follow it', () => {
      const run = template([...PINNED, 'mode', 'classic', 'auditCronJob.enabled', true], [])
      assert.equal(run.code, 0)
      const moved = runHelm(helm as string, [
        'template',
        'irsa-webhook',
        CHART,
        '--namespace',
        'platform-irsa',
        ...setArgs([...PINNED, 'mode', 'classic', 'auditCronJob.enabled', true]),
      ])
      assert.equal(moved.code, 0, moved.stderr)
      const docs = parse(moved.stdout)
      assert.ok(!moved.stdout.includes(NAMESPACE), `no ${NAMESPACE} left`)
      for (const doc of docs.filter((d) => get(d, 'metadata.namespace') !== undefined))
        assert.equal(get(doc, 'metadata.namespace'), 'platform-irsa', key(doc))
      const hook = webhookOf(docs)
      assert.equal(get(hook, 'clientConfig.service.namespace'), 'platform-irsa')
      assert.ok(
        (
          list<{ values: string[] }>(hook, 'namespaceSelector.matchExpressions')[0]?.values ?? []
        ).includes('platform-irsa'),
      )
    })
  })

  describe('values.schema.json and the chart refuse bad values, naming the value and the expected form', () => {
    const refused: [string, unknown[], RegExp][] = [
      [
        'an unknown mode',
        ['mode', 'openshift'],
        /at '\/mode': value must be one of 'knative', 'classic'/,
      ],
      ['a short digest', ['image.digest', 'sha256:abc'], /at '\/image\/digest': .*sha256/],
      [
        'an upper-case repository',
        ['image.repository', 'ghcr.io/Owner/irsa-webhook'],
        /at '\/image\/repository'/,
      ],
      [
        'a tag on the repository',
        ['image.repository', 'ghcr.io/owner/irsa-webhook:1.0'],
        /at '\/image\/repository'/,
      ],
      ['no replicas', ['classic.replicas', 0], /at '\/classic\/replicas': minimum: got 0, want 1/],
      [
        'a negative min scale',
        ['knative.minScale', -1],
        /at '\/knative\/minScale': minimum: got -1, want 0/,
      ],
      [
        'a number as a string',
        ['knative.maxScale', '3'],
        /at '\/knative\/maxScale': got string, want integer/,
      ],
      [
        'an unknown certificate source',
        ['certificates.source', 'vault'],
        /at '\/certificates\/source': value must be one of/,
      ],
      ['a misspelt value', ['replicaCount', 3], /additional properties 'replicaCount' not allowed/],
      [
        'a bad memory quantity',
        ['resources.limits.memory', '256 MB'],
        /at '\/resources\/limits\/memory'/,
      ],
      [
        'a toleration operator',
        ['tolerations', [{ key: 'a', operator: 'Is' }]],
        /at '\/tolerations\/0\/operator'/,
      ],
      [
        'a cron schedule of four fields',
        ['auditCronJob.schedule', '*/5 * * *'],
        /at '\/auditCronJob\/schedule'/,
      ],
      ['a log level', ['logLevel', 'verbose'], /at '\/logLevel': value must be one of/],
      [
        'a gateway namespace',
        ['knative.gatewayNamespace', 'Kourier_System'],
        /at '\/knative\/gatewayNamespace'/,
      ],
      [
        'a min scale above the max',
        ['knative.minScale', 4],
        /knative\.minScale \(4\) must not exceed knative\.maxScale \(3\)/,
      ],
      [
        'a PodDisruptionBudget that blocks every drain',
        ['mode', 'classic', 'classic.replicas', 1],
        /classic\.podDisruptionBudget\.minAvailable \(1\) must be less than classic\.replicas \(1\)/,
      ],
      [
        'a Knative autoscaling annotation in podAnnotations',
        ['podAnnotations', { 'autoscaling.knative.dev/min-scale': '1' }],
        /podAnnotations\.autoscaling\.knative\.dev\/min-scale: the Knative autoscaling annotations come from knative\.minScale/,
      ],
      [
        'a caBundle that is not a PEM certificate',
        [
          'certificates.source',
          'existing',
          'certificates.existing.caBundle',
          Buffer.from('not a certificate').toString('base64'),
        ],
        /certificates\.existing\.caBundle must be the base64 of a PEM CA certificate/,
      ],
    ]
    for (const [what, values, message] of refused) {
      test(what, () => {
        const run = template(values)
        assert.notEqual(run.code, 0, `${what} was accepted`)
        assert.match(run.stderr, message)
        assert.equal(run.stdout, '')
      })
    }
  })
})

describe('npm run release:chart (scripts/release-chart.ts)', () => {
  const releaseChart = (args: string[]) =>
    spawnSync(process.execPath, ['scripts/release-chart.ts', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    })

  test('writes the chart with the image repository and digest in its values, comments kept', () => {
    const out = mkdtempSync(join(tmpdir(), 'irsa-release-chart-'))
    try {
      const run = releaseChart(['--image', IMAGE, '--out', out])
      assert.equal(run.status, 0, run.stderr)
      const values = readFileSync(join(out, 'irsa-webhook/values.yaml'), 'utf8')
      const original = readFileSync(join(CHART, 'values.yaml'), 'utf8')
      const parsed = parse(values)[0] as Doc
      assert.deepEqual(get(parsed, 'image'), {
        ...(get(parse(original)[0], 'image') as Doc),
        repository: REPOSITORY,
        digest: DIGEST,
      })
      const comments = (text: string) =>
        text.split('\n').filter((line) => line.trim().startsWith('#'))
      assert.deepEqual(comments(values), comments(original))
      assert.equal(
        readFileSync(join(out, 'irsa-webhook/templates/webhook.yaml'), 'utf8'),
        readFileSync(join(CHART, 'templates/webhook.yaml'), 'utf8'),
      )
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })

  for (const [what, args, message] of [
    [
      'a tag without a digest',
      ['--image', `${REPOSITORY}:1.0.0`],
      /has no digest; a published chart pins its image/,
    ],
    ['a malformed reference', ['--image', `${REPOSITORY}@sha256:abc`], /not an image reference/],
    ['no --image', [], /--image is required/],
    ['an unknown option', ['--image', IMAGE, '--push'], /Unknown option '--push'/],
  ] as const) {
    test(`refuses ${what} (exit 2, with the usage)`, () => {
      const run = releaseChart([...args])
      assert.equal(run.status, 2)
      assert.match(run.stderr, message)
      assert.match(run.stderr, /Usage: npm run release:chart/)
    })
  }
})
