/**
 * CustomResourceDefinitions for the real control plane, loaded from Go modules as envtest users load them, never
 * copied into the repository: Knative Serving's (Service, DomainMapping, …) and Knative networking's
 * (ClusterDomainClaim, …) from the releases test/cluster/knative/go.mod pins, and cert-manager's from the copy
 * Knative Serving's module carries for its own tests (third_party/cert-manager-latest).
 * @module
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { ControlPlane } from './control-plane.ts'
import { parse } from './manifests.ts'

const MODULE_DIR = new URL('../cluster/knative/', import.meta.url).pathname

/** Where `go mod download` put each pinned module (verified against test/cluster/knative/go.sum). */
async function moduleDirs(): Promise<Record<string, string>> {
  const { stdout } = await promisify(execFile)(
    'go',
    ['mod', 'download', '-json', 'knative.dev/serving', 'knative.dev/networking'],
    { cwd: MODULE_DIR, env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' } },
  )
  // `go mod download -json` prints one JSON object per module, back to back.
  const objects = stdout
    .split(/\n(?=\{)/)
    .map((text) => JSON.parse(text) as { Path: string; Dir: string })
  return Object.fromEntries(objects.map(({ Path, Dir }) => [Path, Dir]))
}

export interface CrdSet {
  readonly source: string
  readonly documents: Record<string, unknown>[]
}

const crdsIn = (source: string, files: string[]): CrdSet => ({
  source,
  documents: files
    .flatMap((file) => parse(readFileSync(file, 'utf8')))
    .filter((doc) => doc['kind'] === 'CustomResourceDefinition'),
})

/** Knative Serving + networking CRDs, and cert-manager's, from the pinned modules. */
export async function pinnedCrds(): Promise<{ knative: CrdSet; certManager: CrdSet }> {
  const dirs = await moduleDirs()
  const serving = dirs['knative.dev/serving'] ?? ''
  const networking = dirs['knative.dev/networking'] ?? ''
  const resources = join(serving, 'config/core/300-resources')
  return {
    knative: crdsIn(`knative.dev/serving (${serving}) + knative.dev/networking`, [
      ...['service', 'configuration', 'revision', 'route', 'domain-mapping'].map((name) =>
        join(resources, `${name}.yaml`),
      ),
      ...['domain-claim', 'ingress', 'certificate', 'serverlessservice'].map((name) =>
        join(networking, 'config', `${name}.yaml`),
      ),
    ]),
    certManager: crdsIn(`${serving}/third_party/cert-manager-latest`, [
      join(serving, 'third_party/cert-manager-latest/cert-manager.yaml'),
    ]),
  }
}

/** Creates (server-side apply) the CRDs and waits until every one is Established. */
export async function installCrds(cp: ControlPlane, set: CrdSet): Promise<void> {
  await cp.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: set.documents }),
  })
  const names = set.documents.map(
    (doc) => `crd/${String((doc['metadata'] as { name: string }).name)}`,
  )
  await cp.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', ...names])
}
