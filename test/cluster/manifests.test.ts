/**
 * Every shipped manifest accepted by the real kube-apiserver: the kustomize trees (deploy/, knative/, their overlays)
 * and every release bundle (`npm run release:manifests`), each applied with `kubectl apply --dry-run=server`, the
 * Knative ones against the CRDs of the Knative Serving release docs/knative.md supports and the cert-manager ones
 * against cert-manager's CRDs (test/support/crds.ts: from Go modules, not copied here). Server-side dry-run runs the
 * API server's whole validation, defaulting and admission, and stores nothing.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BUNDLES } from '../../scripts/release-manifests.ts'
import { warningsOf } from '../support/cluster-pods.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { installCrds, pinnedCrds } from '../support/crds.ts'
import { type Doc, parse } from '../support/manifests.ts'
import { ROOT } from '../support/process.ts'

const cluster = await controlPlane()
const IMAGE = `ghcr.io/owner/irsa-webhook@sha256:${'0123456789abcdef'.repeat(4)}`
/** The namespaces a Knative install brings (the gateway's), which our bundles expect to exist. */
const PREREQUISITE_NAMESPACES = ['kourier-system', 'knative-serving']

const TREES = [
  'deploy',
  'deploy/overlays/cert-manager',
  'knative',
  'knative/overlays/production',
  'knative/overlays/operator',
]

describe('the shipped manifests on a real kube-apiserver (server-side dry run)', {
  skip: cluster.skip,
}, () => {
  let cp: ControlPlane
  let releaseDir: string
  before(
    async () => {
      cp = usable(cluster)
      const crds = await pinnedCrds()
      await installCrds(cp, crds.knative)
      await installCrds(cp, crds.certManager)
      for (const name of PREREQUISITE_NAMESPACES)
        await cp.kubectlOk(['apply', '-f', '-'], {
          input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }),
        })
      releaseDir = mkdtempSync(join(tmpdir(), 'irsa-release-'))
      const release = spawnSync(
        process.execPath,
        ['scripts/release-manifests.ts', '--image', IMAGE, '--out', releaseDir],
        { cwd: ROOT, encoding: 'utf8' },
      )
      assert.equal(release.status, 0, release.stderr)
    },
    { timeout: 180_000 },
  )
  after(() => rmSync(releaseDir, { recursive: true, force: true }))

  /** Creates the manifest's own Namespaces for real (a dry run cannot put objects into a namespace it did not make). */
  async function dryRun(documents: Doc[]) {
    const namespaces = documents.filter((doc) => doc['kind'] === 'Namespace')
    if (namespaces.length > 0)
      await cp.kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: namespaces }),
      })
    return cp.kubectl(['apply', '--dry-run=server', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: documents }),
    })
  }

  it('writes every release bundle', () => {
    assert.deepEqual(
      readdirSync(releaseDir)
        .filter((f) => f.endsWith('.yaml'))
        .sort(),
      BUNDLES.map((b) => b.file).sort(),
    )
  })

  for (const bundle of BUNDLES) {
    it(`release bundle ${bundle.file} is accepted, with no warning`, async () => {
      const documents = parse(readFileSync(join(releaseDir, bundle.file), 'utf8'))
      const applied = await dryRun(documents)
      assert.equal(applied.code, 0, applied.stderr)
      assert.deepEqual(warningsOf(applied.stderr), [])
      // One "… created (server dry run)" or "… configured (server dry run)" line per object.
      const lines = applied.stdout.trim().split('\n')
      assert.equal(lines.length, documents.length, applied.stdout)
      for (const line of lines) assert.match(line, /\(server dry run\)$/)
    })
  }

  for (const tree of TREES) {
    it(`kustomize tree ${tree} is accepted, with no warning`, async () => {
      const rendered = spawnSync('kubectl', ['kustomize', tree], { cwd: ROOT, encoding: 'utf8' })
      assert.equal(rendered.status, 0, rendered.stderr)
      const documents = parse(rendered.stdout)
      const applied = await dryRun(documents)
      assert.equal(applied.code, 0, applied.stderr)
      assert.deepEqual(warningsOf(applied.stderr), [])
    })
  }

  it('rejects a broken manifest (the check can fail): a Deployment with no containers', async () => {
    const applied = await dryRun([
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'broken', namespace: 'default' },
        spec: {
          selector: { matchLabels: { app: 'x' } },
          template: { metadata: { labels: { app: 'x' } }, spec: { containers: [] } },
        },
      },
    ])
    assert.notEqual(applied.code, 0)
    assert.match(applied.stderr, /containers: Required value/)
  })
})
