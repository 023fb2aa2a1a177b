/**
 * Writes package.json's `version` into the copies that cannot read it at build time: the Dockerfile's
 * `ARG VERSION=` default and, in every kustomization and component under deploy/ and knative/, the
 * `app.kubernetes.io/version` label and the image's `newTag`, and the Helm chart's `version` and `appVersion`
 * (charts/irsa-webhook/Chart.yaml). `npm version X.Y.Z` runs it (package.json's `version`
 * script) between bumping package.json and committing, so the release commit and its tag carry one version
 * everywhere; test/unit/version.test.ts fails when a copy differs.
 *
 *   node scripts/sync-version.ts [--root DIR]     (default: this repository)
 *
 * Exit codes: 0 written (prints each file it changed); 1 a file lacks the line it must carry.
 * @module
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { EXIT } from '../cli/shared/io.ts'

/** The version's lines (group 1 is everything before the version): the Dockerfile must carry its one. */
const DOCKERFILE_LINE = /^(ARG VERSION=)\S+$/gm
/** In a kustomization or component: the `app.kubernetes.io/version` label, the image's `newTag`. */
const MANIFEST_LINES = /^(\s+(?:app\.kubernetes\.io\/version|newTag): )\S+$/gm

/** In Chart.yaml: the chart's `version` and `appVersion` (the chart is released with the app, one version). */
const CHART = 'charts/irsa-webhook/Chart.yaml'
const CHART_LINES = /^((?:version|appVersion): )\S+$/gm

/** Rewrites every copy under `root` to `version`; returns the files that changed. */
function syncVersion(root: string, version: string): string[] {
  const kustomizations = ['deploy', 'knative'].flatMap((dir) =>
    readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('kustomization.yaml'))
      .map((file) => join(dir, file)),
  )
  const changed: string[] = []
  const patterns: Record<string, RegExp> = { Dockerfile: DOCKERFILE_LINE, [CHART]: CHART_LINES }
  for (const file of ['Dockerfile', CHART, ...kustomizations]) {
    const path = join(root, file)
    const text = readFileSync(path, 'utf8')
    const pattern = patterns[file] ?? MANIFEST_LINES
    if (file in patterns && text.search(pattern) < 0)
      throw new Error(`${file}: no line matches ${pattern}`)
    const updated = text.replace(pattern, (_line, before: string) => `${before}${version}`)
    if (updated !== text) {
      writeFileSync(path, updated)
      changed.push(file)
    }
  }
  return changed
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { root: { type: 'string', default: '.' } } })
  const root = resolve(values.root)
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    version: string
  }
  try {
    for (const file of syncVersion(root, version)) console.log(`${file}: ${version}`)
  } catch (error) {
    console.error(`sync-version: ${(error as Error).message}`)
    process.exitCode = EXIT.failed
  }
}
