/**
 * Prints the CHANGELOG.md section of one version (Keep a Changelog, parsed with keep-a-changelog), for the GitHub
 * release's notes:
 *
 *   node scripts/release-notes.ts 0.1.0 > NOTES.md
 *
 * Exit codes: 0 printed; 1 CHANGELOG.md has no dated section for that version; 2 no version given.
 * @module
 */
import { readFileSync } from 'node:fs'
import { parser } from 'keep-a-changelog'
import { EXIT } from '../cli/shared/io.ts'

/** The section of `version` in `changelog` (the Markdown text), or undefined when there is no dated one. */
export function releaseNotes(changelog: string, version: string): string | undefined {
  const parsed = parser(changelog)
  const release = parsed.findRelease(version)
  if (release?.date === undefined) return undefined
  return release.toString(parsed)
}

if (import.meta.main) {
  const [version] = process.argv.slice(2)
  if (version === undefined) {
    process.stderr.write('Usage: node scripts/release-notes.ts VERSION\n')
    process.exitCode = EXIT.usage
  } else {
    const notes = releaseNotes(
      readFileSync(new URL('../CHANGELOG.md', import.meta.url), 'utf8'),
      version,
    )
    if (notes === undefined) {
      process.stderr.write(`CHANGELOG.md has no dated section "## [${version}] - YYYY-MM-DD"\n`)
      process.exitCode = EXIT.failed
    } else process.stdout.write(`${notes.trim()}\n`)
  }
}
