/**
 * Writes package.json's `version` into the copies that cannot read it at build time: the Dockerfile's
 * `ARG VERSION=` default and, in every kustomization and component under deploy/ and knative/, the
 * `app.kubernetes.io/version` label and the image's `newTag`. `npm version X.Y.Z` runs it (package.json's `version`
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
import { EXIT } from '../function/cli/io.ts'

interface Copy {
  readonly file: string
  /** The line(s) holding the version; group 1 is everything before the version. */
  readonly pattern: RegExp
}

function copies(root: string): Copy[] {
  const kustomizations = ['deploy', 'knative'].flatMap((dir) =>
    readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('kustomization.yaml'))
      .map((file) => join(dir, file)),
  )
  return [
    { file: 'Dockerfile', pattern: /^(ARG VERSION=)\S+$/gm },
    ...kustomizations
      .filter((file) =>
        readFileSync(join(root, file), 'utf8').includes('app.kubernetes.io/version:'),
      )
      .map((file) => ({ file, pattern: /^(\s+app\.kubernetes\.io\/version: )\S+$/gm })),
    ...kustomizations
      .filter((file) => /^\s+newTag: /m.test(readFileSync(join(root, file), 'utf8')))
      .map((file) => ({ file, pattern: /^(\s+newTag: )\S+$/gm })),
  ]
}

/** Rewrites every copy under `root` to `version`; returns the files that changed. */
function syncVersion(root: string, version: string): string[] {
  const changed = new Set<string>()
  for (const { file, pattern } of copies(root)) {
    const path = join(root, file)
    const text = readFileSync(path, 'utf8')
    if (!pattern.test(text)) throw new Error(`${file}: no line matches ${pattern}`)
    const updated = text.replace(pattern, (_line, before: string) => `${before}${version}`)
    if (updated !== text) {
      writeFileSync(path, updated)
      changed.add(file)
    }
  }
  return [...changed]
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
