/**
 * One release version, package.json's `version`, everywhere it shows: `irsa-webhook --version`, the metrics'
 * build_info, the Dockerfile's VERSION default (the image's org.opencontainers.image.version label), the
 * `app.kubernetes.io/version` label and the image tag of every shipped manifest, and the CHANGELOG. The start log
 * line and the bundle's inlined copy are checked on the built bundle (test/integration/bundle.test.ts).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { DockerfileParser } from 'dockerfile-ast'
import { createMetrics } from '../../function/metrics.ts'
import { VERSION } from '../../function/version.ts'
import { releaseNotes } from '../../scripts/release-notes.ts'
import {
  type Doc,
  get,
  list,
  noKubectl,
  parseFiles,
  render,
  renderWith,
  yamlFiles,
} from '../support/manifests.ts'
import { ROOT } from '../support/process.ts'

const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
}
const VERSION_LABEL = 'app.kubernetes.io/version'

/** Every kustomization (not component) under deploy/ and knative/: each is something a user may apply. */
const kustomizations = [...yamlFiles('deploy'), ...yamlFiles('knative')]
  .filter((file) => file.endsWith('kustomization.yaml'))
  .filter((file) => parseFiles(file)[0]?.['kind'] === 'Kustomization')
  .map((file) => file.slice(0, -'/kustomization.yaml'.length))
/** The components under deploy/components, which users add to either tree (knative/components are in overlays). */
const components = yamlFiles('deploy/components')
  .filter((file) => file.endsWith('kustomization.yaml'))
  .filter((file) => parseFiles(file)[0]?.['kind'] === 'Component')
  .map((file) => file.slice(0, -'/kustomization.yaml'.length))
  .sort()

function assertLabelled(docs: Doc[], where: string): void {
  assert.ok(docs.length > 0, `${where} renders objects`)
  for (const doc of docs) {
    assert.equal(
      (get(doc, 'metadata.labels') as Record<string, string> | undefined)?.[VERSION_LABEL],
      version,
      `${where}: ${doc['kind']} ${get(doc, 'metadata.name')} carries ${VERSION_LABEL}: ${version}`,
    )
  }
}

describe(`the release version (package.json: ${version})`, () => {
  test('is a semantic version, and the one the code reports', () => {
    assert.match(version, /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/)
    assert.equal(VERSION, version)
  })

  test('irsa-webhook --version prints it', () => {
    const out = execFileSync(process.execPath, ['bin/irsa-webhook.ts', '--version'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    assert.equal(out, `${version}\n`)
  })

  test('the metrics export it as irsa_webhook_build_info{version,node} 1', async () => {
    const text = await createMetrics().registry.metrics()
    assert.match(text, /^# TYPE irsa_webhook_build_info gauge$/m)
    assert.ok(
      text.includes(
        `\nirsa_webhook_build_info{version="${version}",node="${process.version}"} 1\n`,
      ),
    )
  })

  test("is the Dockerfile's VERSION default (the image's org.opencontainers.image.version)", () => {
    const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
    const args = dockerfile.getInitialARGs().map((arg) => arg.getProperty())
    assert.equal(args.find((arg) => arg?.getName() === 'VERSION')?.getValue(), version)
  })

  test('is the tag of the image every kustomize base names', () => {
    for (const dir of ['deploy/base', 'knative/base']) {
      const [image] = list(parseFiles(join(dir, 'kustomization.yaml'))[0], 'images')
      assert.equal(image?.['newTag'], version, dir)
    }
  })

  test('has a dated section in CHANGELOG.md (the notes of its GitHub release)', () => {
    const notes = releaseNotes(readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8'), version)
    assert.match(
      notes ?? '',
      new RegExp(`^## \\[${version.replaceAll('.', '\\.')}\\] - \\d{4}-\\d{2}-\\d{2}\n`),
    )
    assert.match(notes ?? '', /^### Added$/m)
    assert.equal(releaseNotes('# Changelog\n\n## [Unreleased]\n', version), undefined)
    const printed = execFileSync(process.execPath, ['scripts/release-notes.ts', version], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    assert.equal(printed, `${notes?.trim()}\n`)
  })
})

describe(`${VERSION_LABEL} on every object of every kustomization`, { skip: noKubectl }, () => {
  test('the kustomizations are found', () => {
    assert.ok(kustomizations.length >= 5, kustomizations.join(' '))
  })
  for (const dir of kustomizations) {
    test(dir, () => assertLabelled(render(dir), dir))
  }
  test('the components are found', () => {
    assert.deepEqual(components, [
      'deploy/components/audit-cronjob',
      'deploy/components/cert-manager',
      'deploy/components/certs',
      'deploy/components/opt-in-label',
      'deploy/components/path-token',
      'deploy/components/policy-labelled-service-accounts',
    ])
  })
  // Each component added to both trees (cert-manager: classic only; the policy ones: policy mode), as a user adds
  // it to either. The certs component is already in both trees (deploy/, knative/ and its overlays, rendered
  // above), so it is not added again.
  const treesFor = (component: string) =>
    component.endsWith('/cert-manager')
      ? ['deploy']
      : component.endsWith('/policy-labelled-service-accounts')
        ? ['deploy/policy']
        : component.endsWith('/opt-in-label')
          ? ['deploy', 'knative', 'deploy/policy']
          : ['deploy', 'knative']
  for (const component of components.filter((c) => !c.endsWith('/certs'))) {
    for (const tree of treesFor(component)) {
      test(`${tree} + ${component}`, () => {
        const docs = renderWith(`resources: [${tree}]\ncomponents: [${component}]\n`, {
          // path-token needs its token file (docs/deploy.md).
          'deploy/components/path-token/path-token.env':
            'MUTATE_PATH_TOKEN=path-token-0123456789abcdef\n',
        })
        assertLabelled(docs, `${tree} + ${component}`)
      })
    }
  }
})

describe('npm version X.Y.Z (scripts/sync-version.ts, the `version` script)', {
  skip: noKubectl,
}, () => {
  test('writes the new version into the Dockerfile and every manifest copy, and nothing is left behind', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'irsa-sync-version-'))
    try {
      for (const path of ['Dockerfile', 'deploy', 'knative'])
        cpSync(join(ROOT, path), join(scratch, path), { recursive: true })
      const next = '9.8.7-rc.1'
      writeFileSync(join(scratch, 'package.json'), JSON.stringify({ version: next }))
      const sync = () =>
        execFileSync(process.execPath, ['scripts/sync-version.ts', '--root', scratch], {
          cwd: ROOT,
          encoding: 'utf8',
          stdio: 'pipe',
        })
      assert.match(sync(), /^Dockerfile: 9\.8\.7-rc\.1$/m)
      const dockerfile = readFileSync(join(scratch, 'Dockerfile'), 'utf8')
      assert.match(dockerfile, /^ARG VERSION=9\.8\.7-rc\.1$/m)
      for (const dir of kustomizations) {
        const docs = render(join(scratch, dir))
        assert.ok(docs.length > 0)
        for (const doc of docs) {
          const labels = get(doc, 'metadata.labels') as Record<string, string>
          assert.equal(labels[VERSION_LABEL], next, `${dir}: ${doc['kind']}`)
        }
        for (const image of docs.flatMap((doc) => list(doc, 'spec.template.spec.containers')))
          assert.equal(image['image'], `registry.example.com/irsa-webhook:${next}`)
      }
      // Components included: no copy of the version is left anywhere under deploy/ and knative/.
      for (const dir of ['deploy', 'knative']) {
        const labels = readdirSync(join(scratch, dir), { recursive: true, encoding: 'utf8' })
          .filter((file) => file.endsWith('.yaml'))
          .flatMap((file) => [
            ...readFileSync(join(scratch, dir, file), 'utf8').matchAll(
              /app\.kubernetes\.io\/version: (\S+)/g,
            ),
          ])
          .map((match) => match[1])
        assert.ok(labels.length > 0, dir)
        assert.deepEqual(new Set(labels), new Set([next]), dir)
      }
      assert.equal(sync(), '', 'a second run changes nothing')
      writeFileSync(join(scratch, 'Dockerfile'), dockerfile.replace(/^ARG VERSION=.*$/m, ''))
      assert.throws(sync, /Dockerfile: no line matches/)
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  })
})
