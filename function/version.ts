/**
 * The release version: package.json's `version`, the one place it is written. `scripts/build.ts` inlines it into
 * the bundle (esbuild `define`), so the image needs no package.json at run time; run from source (tests, `npm run
 * dev`, the CLI) it is read from package.json.
 * @module
 */
import { readFileSync } from 'node:fs'

/** Replaced by the version string in the esbuild bundle; never defined when running from source. */
declare const IRSA_WEBHOOK_VERSION: string | undefined

function fromPackageJson(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: unknown
  }
  if (typeof pkg.version !== 'string') throw new Error('package.json has no version')
  return pkg.version
}

export const VERSION: string =
  typeof IRSA_WEBHOOK_VERSION === 'string' ? IRSA_WEBHOOK_VERSION : fromPackageJson()
